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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        parser.exit(2, f"ad-gym {args.command}: error: {exc}\n")
    except KeyboardInterrupt:
        parser.exit(130, "interrupted; finished tasks are kept and a rerun resumes\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ad-gym", description="In-context RL by Algorithm Distillation.")
    commands = parser.add_subparsers(dest="command", required=True)

    from ad_gym.sources.sb3 import ALGORITHMS, SourceConfig

    defaults = SourceConfig()
    collect = commands.add_parser(
        "collect",
        help="train a source RL agent on every task of a split and record its learning histories",
        description="Train a Stable-Baselines3 source agent on every task of a split, recording every "
        "step of every stream; finished tasks are skipped on a rerun.",
    )
    collect.add_argument("env_id", help=f"one of {env_ids()} (or ad_gym/<id>)")
    collect.add_argument("--split", default="train", choices=SPLITS, help="task split (default: train)")
    collect.add_argument("--out", help="output folder (default: histories/<ENV_ID>-<SPLIT>)")
    collect.add_argument("--max-tasks", type=int, help="collect only the first N tasks of the split")
    collect.add_argument(
        "--steps", type=int, default=defaults.total_steps, help=f"env steps per task, all streams together (default: {defaults.total_steps})"
    )
    collect.add_argument("--algo", default=defaults.algo, choices=sorted(ALGORITHMS), help=f"source algorithm (default: {defaults.algo})")
    collect.add_argument("--streams", type=int, default=defaults.n_streams, help=f"parallel envs per learner (default: {defaults.n_streams})")
    collect.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter of the algorithm, VALUE parsed as JSON (e.g. --hp learning_rate=1e-3 "
        "--hp 'policy_kwargs={\"net_arch\": [128, 128]}'); repeatable",
    )
    collect.add_argument("--seed", type=int, default=0, help="seed of the whole collection (default: 0)")
    collect.add_argument("--workers", type=int, help="parallel processes (default: every core)")
    collect.add_argument("--no-progress", action="store_true", help="no progress bar")
    collect.set_defaults(handler=run_collect)

    summarize = commands.add_parser("summarize", help="print the learning curve recorded in a folder of histories")
    summarize.add_argument("path", help="a history folder or file")
    summarize.add_argument("--blocks", type=int, default=10, help="episode blocks in the table (default: 10)")
    summarize.set_defaults(handler=run_summarize)
    return parser


def parse_hyperparams(pairs: list[str]) -> dict[str, Any]:
    hyperparams = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--hp expects KEY=VALUE, got {pair!r}")
        try:
            hyperparams[key] = json.loads(value)
        except json.JSONDecodeError:
            hyperparams[key] = value  # a plain string, e.g. --hp policy=CnnPolicy
    return hyperparams


def run_collect(args) -> int:
    from ad_gym.data.histories import load_histories
    from ad_gym.envs.tasks import canonical_env_id
    from ad_gym.sources.collect import collect
    from ad_gym.sources.sb3 import SourceConfig
    from ad_gym.sources.summary import summarize

    env_id = canonical_env_id(args.env_id)
    out = args.out or f"histories/{env_id}-{args.split}"
    config = SourceConfig(algo=args.algo, n_streams=args.streams, total_steps=args.steps, hyperparams=parse_hyperparams(args.hp))
    results = collect(
        env_id, out, split=args.split, config=config, seed=args.seed, max_tasks=args.max_tasks,
        workers=args.workers, progress=not args.no_progress,
    )
    skipped = sum(r.skipped for r in results)
    print(f"\n{len(results)} task histories in {out} ({skipped} already there, {len(results) - skipped} collected now)\n")
    print(summarize(load_histories(out, env_id=env_id)))
    return 0


def run_summarize(args) -> int:
    from ad_gym.data.histories import load_histories
    from ad_gym.sources.summary import summarize

    print(summarize(load_histories(args.path), n_blocks=args.blocks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
