"""The ``ad-gym`` command line: a thin layer over the Python API.

    ad-gym collect DarkRoom-v0 --split train --out histories/DarkRoom-v0-train
    ad-gym summarize histories/DarkRoom-v0-train
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ad_gym.envs.tasks import SPLITS, env_ids
from ad_gym.settings import config_from_pairs, describe_fields
from ad_gym.version import __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, FloatingPointError) as exc:
        parser.exit(2, f"ad-gym {args.command}: error: {exc}\n")
    except OSError as exc:  # a file or folder that cannot be read or written: one line, not a traceback
        where = f": {exc.filename!r}" if getattr(exc, "filename", None) else ""
        parser.exit(2, f"ad-gym {args.command}: error: {exc.strerror or exc}{where}\n")
    except KeyboardInterrupt:
        parser.exit(130, "interrupted; finished tasks are kept and a rerun resumes\n")


def positive_int(text: str, least: int = 1, kind: str = "a positive integer") -> int:
    """argparse type: an integer >= 1, refused with a usage error otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
    return value


def folder_path(text: str) -> str:
    """argparse type of output folders: an empty string is refused, not taken for the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    return text


def seed_int(text: str) -> int:
    """argparse type of --seed: an integer >= 0 (numpy's and torch's seeds are)."""
    return positive_int(text, least=0, kind="a non-negative integer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ad-gym", description="In-context RL by Algorithm Distillation.")
    parser.add_argument("--version", action="version", version=f"ad-gym {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    from ad_gym.presets import PRESETS
    from ad_gym.sources.sb3 import ALGORITHMS, SourceConfig
    from ad_gym.training import TrainConfig

    defaults = SourceConfig()
    collect = commands.add_parser(
        "collect",
        help="train a source RL agent on every task of a split and record its learning histories",
        description="Train a Stable-Baselines3 source agent on every task of a split, recording every "
        "step of every stream; finished tasks are skipped on a rerun.",
        epilog="source settings (SourceConfig; the options below set them):\n" + describe_fields(SourceConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    collect.add_argument("env_id", help=f"one of {env_ids()} (or ad_gym/<id>)")
    collect.add_argument("--split", default="train", help=f"task split: {', '.join(SPLITS)}, or a family's own condition such as 'even' (default: train)")
    collect.add_argument("--out", type=folder_path, help="output folder (default: histories/<ENV_ID>-<SPLIT>)")
    collect.add_argument("--max-tasks", type=int, help="collect only the first N tasks of the split")
    collect.add_argument(
        "--steps", type=int, default=defaults.total_steps, help=f"env steps per task, all streams together (default: {defaults.total_steps})"
    )
    collect.add_argument("--algo", choices=sorted(ALGORITHMS), help="source algorithm (default: the family's: a2c, ucb for the bandit, ppo for Watermaze); "
        "oracle records expert demonstrations (for expert distillation)")
    collect.add_argument("--streams", type=int, default=defaults.n_streams, help=f"parallel envs per learner (default: {defaults.n_streams})")
    collect.add_argument("--policy", default=defaults.policy, help=f"SB3 policy name (default: {defaults.policy}: MlpPolicy, or a small CNN for pixels)")
    collect.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter of the algorithm, VALUE parsed as JSON (e.g. --hp learning_rate=1e-3 "
        "--hp 'policy_kwargs={\"net_arch\": [128, 128]}'); repeatable",
    )
    collect.add_argument("--seed", type=seed_int, default=0, help="seed of the whole collection (default: 0)")
    collect.add_argument("--workers", type=int, help="parallel processes (default: every core); with --backend ray and "
                         "no --address, the CPUs of the local Ray cluster")
    collect.add_argument("--backend", choices=("local", "ray"), default="local",
                         help="local: a process pool on this machine (default); ray: a Ray cluster (pip install -e '.[ray]')")
    collect.add_argument("--address", help="with --backend ray: the running cluster to use (e.g. auto, ray://HEAD:10001); "
                         "default: a local cluster started for this collection")
    collect.add_argument("--sb3-log", type=folder_path, metavar="DIR", help="keep each SB3 learner's own logs in DIR/<task>/ "
                         "(progress.csv; TensorBoard too when installed), like SB3's tensorboard_log=")
    collect.add_argument("--no-progress", action="store_true", help="no progress bar")
    collect.set_defaults(handler=run_collect)

    run = commands.add_parser(
        "run",
        help="the whole pipeline: collect, train the preset's methods, evaluate in context, print the leaderboard",
        description="Collect source histories on the train and held-out tasks, train every method of the "
        "preset, play many episodes in context on the held-out tasks and print the leaderboard. Resumes.",
        epilog="presets (--preset NAME), per env:\n" + describe_presets(PRESETS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("env_id", nargs="?", default="DarkRoom-v0", help="env id (default: DarkRoom-v0)")
    run.add_argument("--preset", default="default", help="named settings (default: default)")
    run.add_argument("--out", type=folder_path, help="output folder (default: runs/<ENV_ID>-<PRESET>)")
    run.add_argument("--seed", type=seed_int, default=0)
    run.add_argument("--workers", type=int, help="processes for collection and for training methods side by side "
                     "(default: every core; 1: one method at a time)")
    run.add_argument("--no-progress", action="store_true")
    run.set_defaults(handler=run_pipeline_command)

    train = commands.add_parser(
        "train",
        help="train an AD (or ED) transformer on a folder of histories",
        description="Train the AD transformer by next-action imitation on stored histories. Options are "
        "TrainConfig fields; a rerun resumes from the last checkpoint in --out.",
        epilog="TrainConfig fields (--set FIELD=VALUE), with their defaults:\n" + describe_fields(TrainConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("histories", nargs="+", help="folder of training histories; several folders (e.g. collections "
                       "of the same tasks with different --seed) are trained on together")
    train.add_argument("--val", help="folder of held-out-task histories for the validation loss")
    train.add_argument("--out", type=folder_path, required=True, help="output folder (checkpoint.pt)")
    train.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="a TrainConfig field, e.g. --set updates=3000 --set every_k=4; repeatable")
    train.add_argument("--log-dir", type=folder_path, help="where the training log goes as it runs: train_log.csv (one row per logged "
                       "update), training.png, TensorBoard scalars if tensorboard is installed (default: --out)")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help="play N episodes in context on held-out tasks and print the returns")
    evaluate.add_argument("checkpoint", help="checkpoint file, training folder, or shipped model name")
    evaluate.add_argument("--split", default="test", help="task split (default: test)")
    evaluate.add_argument("--episodes", type=positive_int, default=100)
    evaluate.add_argument("--seeds", type=positive_int, default=4, help="seeds per task (default: 4)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON (per-episode means, "
                          "intervals, interquartile means) instead of the markdown table")
    evaluate.set_defaults(handler=run_evaluate)

    summarize = commands.add_parser("summarize", help="print the learning curve recorded in a folder of histories")
    summarize.add_argument("path", help="a history folder or file")
    summarize.add_argument("--blocks", type=positive_int, default=10, help="episode blocks in the table (default: 10)")
    summarize.add_argument("--no-progress", action="store_true", help="accepted as on every subcommand (summarize shows no bar)")
    summarize.set_defaults(handler=run_summarize)
    return parser


def describe_presets(presets) -> str:
    """One line per preset: its env, name, methods and budget."""
    return "\n".join(
        f"  {env_id} {name}: {', '.join(m.name for m in preset.methods)}; source {preset.source.algo}"
        + (f" ({preset.notes})" if preset.notes else "")
        for env_id, named in presets.items() for name, preset in named.items()
    )


def parse_hyperparams(pairs: list[str]) -> dict[str, Any]:
    return parse_pairs(pairs, "--hp")


def parse_pairs(pairs: list[str], option: str) -> dict[str, Any]:
    hyperparams = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {pair!r}")
        try:
            hyperparams[key] = json.loads(value)
        except json.JSONDecodeError:
            hyperparams[key] = value  # a plain string, e.g. --hp policy=CnnPolicy
    return hyperparams


def run_collect(args) -> int:
    from ad_gym.data.histories import read_history
    from ad_gym.envs.tasks import canonical_env_id, family
    from ad_gym.sources.collect import collect
    from ad_gym.sources.sb3 import SourceConfig
    from ad_gym.sources.summary import summarize

    env_id = canonical_env_id(args.env_id)
    out = args.out or f"histories/{env_id}-{args.split}"
    config = SourceConfig(algo=args.algo or family(env_id).default_source, n_streams=args.streams, total_steps=args.steps,
                          hyperparams=parse_hyperparams(args.hp), policy=args.policy)
    results = collect(
        env_id, out, split=args.split, config=config, seed=args.seed, max_tasks=args.max_tasks,
        workers=args.workers, progress=not args.no_progress, sb3_log_dir=args.sb3_log, backend=args.backend,
        address=args.address,
    )
    skipped = sum(r.skipped for r in results)
    print(f"\n{len(results)} task histories in {out} ({skipped} already there, {len(results) - skipped} collected now)\n")
    print(summarize([read_history(r.path) for r in results]))  # only this collection's files: others may sit beside them
    return 0


def run_pipeline_command(args) -> int:
    from ad_gym.pipeline import run_pipeline

    result = run_pipeline(args.env_id, args.preset, args.out, workers=args.workers, seed=args.seed, progress=not args.no_progress)
    print(f"\n{args.env_id}, preset {args.preset}: mean return per episode on held-out tasks (95% CI)\n")
    print(result.table)
    print("\n" + ", ".join(f"{k}: {v / 60:.1f} min" for k, v in result.seconds.items()))
    print(f"results in {result.out}/ (leaderboard.md, returns.png, returns.npz, one folder per method's checkpoint)")
    return 0


def run_train(args) -> int:
    from ad_gym.training import TrainConfig, train

    config = config_from_pairs(TrainConfig, parse_pairs(args.set, "--set"))
    path = train(args.histories, args.out, config, val_path=args.val, progress=not args.no_progress, log_dir=args.log_dir)
    print(f"checkpoint: {path}")
    return 0


def run_evaluate(args) -> int:
    from ad_gym.agents import load_agent
    from ad_gym.checkpoints import checkpoint_method
    from ad_gym.envs.tasks import tasks
    from ad_gym.evaluation import leaderboard_data, leaderboard_table, play_episodes

    agent = load_agent(args.checkpoint, seed=0)
    split_tasks = tasks(agent.env_id, args.split)
    returns = play_episodes(lambda rows: agent, agent.env_id, split_tasks, args.episodes,
                            list(range(args.seeds)), progress=not args.no_progress)
    curves = {checkpoint_method(agent.meta): returns}
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "env_id": agent.env_id, "split": args.split,
                          "tasks": len(split_tasks), "seeds": args.seeds, "methods": leaderboard_data(curves, len(split_tasks))}))
    else:
        print(leaderboard_table(curves))
    return 0


def run_summarize(args) -> int:
    from ad_gym.data.histories import load_histories
    from ad_gym.sources.summary import summarize

    print(summarize(load_histories(args.path), n_blocks=args.blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
