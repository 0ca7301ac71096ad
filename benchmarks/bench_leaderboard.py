"""The leaderboard of one task family: the whole AD pipeline on a preset, timed, checked against the bar.

    python benchmarks/bench_leaderboard.py --preset default                 # Dark Room
    python benchmarks/bench_leaderboard.py DarkKeyToDoor-v0 --preset default
    python benchmarks/bench_leaderboard.py AdversarialBandit-v0 --preset full

Runs collect -> train every method of the preset -> in-context evaluation in a fresh folder, and
writes benchmarks/results/<family>_<preset>.md (tables, time and peak memory of each stage, the
bar) and <family>_<preset>.png. With ``--compare-pretrained NAME`` it also evaluates a shipped
pretrained model the same way and says whether the fresh run's row of its method reproduces it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

import ad_gym
from ad_gym.agents import load_agent
from ad_gym.checkpoints import checkpoint_method, load_checkpoint, resolve_checkpoint
from ad_gym.envs.tasks import canonical_env_id, tasks
from ad_gym.evaluation import REPORT_EPISODES, block_means, leaderboard_table, mean_ci, normalised_scores, play_episodes
from ad_gym.pipeline import PipelineResult, get_preset, run_pipeline
from ad_gym.sources.sb3 import AGENT_SOURCES
from common import family_name, quick_preset, results_dir, rise, save_results, use_quick_results

def source_sentence(preset) -> str:
    if preset.source.algo in AGENT_SOURCES:
        return (f"Source: its own per-episode returns on the same tasks, one row per stream "
                f"({preset.source.n_streams} independent {preset.source.algo.upper()} learners per task).")
    return (f"Source: its own per-episode returns on the same tasks, all {preset.source.n_streams} streams' "
            "episodes in the order the learner played them (one learner per task).")


def improvement_lines(result: PipelineResult) -> list[str]:
    """Each method's early against late episodes, with intervals: is its improvement beyond them?
    And each method at episodes 20, 40, 50 and 100 beside the source learning from scratch."""
    curves, source = result.curves, result.curves[result.source]
    lines = []
    for name in result.methods:
        returns = curves[name]
        (early, early_h), (late, late_h), separated = rise(returns, (41, 50))
        at = ", ".join(f"episode {e}: {mean_ci(returns, e)[0]:.2f} ± {mean_ci(returns, e)[1]:.2f}"
                       for e in (20, 40, 50, 100) if returns.shape[1] >= e)
        lines.append(f"- {name}: episodes 1-5 {early:.2f} ± {early_h:.2f}, 41-50 **{late:.2f} ± {late_h:.2f}** "
                     f"(ratio {late / max(early, 1e-9):.1f}x; intervals {'separate' if separated else 'OVERLAP'}); {at}")
    at = ", ".join(f"episode {e}: {mean_ci(source, e)[0]:.2f}" for e in (20, 40, 50, 100) if source.shape[1] >= e)
    if source.shape[1] >= 50:
        lines.append(f"- {result.source}, all its streams' episodes in the order it played them: "
                     f"episodes 41-50 {block_means(source, 41, 50)[0]:.2f}; {at}")
    return lines


def bandit_lines(result: PipelineResult) -> list[str]:
    """Normalised scores pooled over all episodes, and each method's first episode against the last half."""
    lines = []
    for split, curves in result.curves_by_split.items():
        pooled = normalised_scores(curves, result.source, pooled=True)
        width = min(c.shape[1] for c in curves.values())
        late = width // 2 + 1
        trend = []
        for method in result.methods:
            (first, first_h), (last, last_h), rose = rise(curves[method], (late, width), early=(1, 1))
            separated = "separate" if rose else "overlap"
            trend.append(f"{method} episode 1: {first:.1f} ± {first_h:.1f}, episodes {late}-{width}: {last:.1f} ± {last_h:.1f} ({separated})")
        scores = ", ".join(f"{method} **{pooled[method]:.2f}**" for method in result.methods)
        lines.append(f"- {split}: normalised score over episodes 1-{width}: {scores}. Returns: {'; '.join(trend)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id", nargs="?", default="DarkRoom-v0")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="pipeline folder (default: a fresh temporary one)")
    parser.add_argument("--save-checkpoints", type=Path, help="save every method's model here as <method slug>.pt (to ship them)")
    parser.add_argument("--compare-pretrained", metavar="NAME", action="append", default=[],
                        help="also evaluate this shipped model and compare it with its method's row; repeatable")
    parser.add_argument("--quick", action="store_true", help="a smoke run (tiny budgets, 2 held-out tasks): never for figures")
    args = parser.parse_args()
    env_id = canonical_env_id(args.env_id)
    preset = get_preset(env_id, args.preset)
    if args.quick:
        use_quick_results()
        preset = quick_preset(preset)

    tmp = None if args.out else tempfile.TemporaryDirectory()
    out = args.out or Path(tmp.name) / "run"
    start = time.perf_counter()
    result = run_pipeline(env_id, preset if args.quick else args.preset, out, seed=args.seed)
    total = time.perf_counter() - start

    name = f"{family_name(env_id)}_{args.preset}"
    results = results_dir()
    results.mkdir(parents=True, exist_ok=True)
    images = []
    for split in result.curves_by_split:
        suffix = "" if split == "test" else f"_{split}"
        shutil.copy(out / f"returns{suffix}.png", results / f"{name}{suffix}.png")
        images.append(f"![{split}]({name}{suffix}.png)")
    n_tasks = len(tasks(env_id, "test")[: preset.test_tasks])
    n_rows = result.curves[result.methods[0]].shape[0]
    command = shlex.join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    bar = bandit_lines(result) if len(result.curves_by_split) > 1 else improvement_lines(result)
    cost = ", ".join(
        f"{stage} {seconds / 60:.1f} min (peak {result.peak_gib[stage]:.2f} GiB)" for stage, seconds in result.seconds.items()
    )
    if result.side_by_side:
        cost += " (side by side, one process each: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in result.side_by_side.items()) + ")"
    lines = [
        f"# {env_id}, preset `{args.preset}`: in-context returns on held-out tasks",
        "",
        f"Command: `{command}` (same pipeline as `ad-gym run {env_id} --preset {args.preset}`)",
        "",
        f"{n_tasks} held-out tasks x {len(preset.eval_seeds)} seeds = {n_rows} rows per method; "
        f"{preset.eval_episodes} consecutive episodes per row in one context, frozen weights, actions sampled. "
        f"Mean return ± half-width of the 95% interval. {source_sentence(preset)}",
        "",
        result.table,
        "",
        *images,
        "",
        "## Against the bar",
        "",
        *bar,
        "",
        "## Cost",
        "",
        "| method | training budget | minutes |",
        "| --- | --- | --- |",
        *(f"| {m.name} | {m.budget()} | {minutes(result, m.name)} |" for m in preset.methods),
        "",
        f"Machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}, ad_gym {ad_gym.__version__}. "
        f"Total {total / 60:.1f} min: {cost}. Peak memory counts the main process and its collection workers.",
        "",
        f"Preset: `{preset}`",
    ]
    if args.save_checkpoints:
        args.save_checkpoints.mkdir(parents=True, exist_ok=True)
        for method in preset.methods:
            agent = load_agent(out / method.slug, seed=0)
            agent.meta["provenance"]["command"] = f"ad-gym run {env_id} --preset {args.preset} --seed {args.seed}"
            agent.save(args.save_checkpoints / f"{method.slug}.pt")
        lines += ["", f"Checkpoints saved to `{args.save_checkpoints}`."]
    for shipped in args.compare_pretrained:
        lines += ["", f"## The shipped pretrained model `{shipped}` against this run", "",
                  *compare_pretrained(env_id, shipped, result, preset)]
    text = "\n".join(lines) + "\n"
    curves = {label if split == "test" else f"{split}: {label}": returns
              for split, by_label in result.curves_by_split.items() for label, returns in by_label.items()}
    n_tasks = {split: len(tasks(env_id, split)[: preset.test_tasks]) for split in result.curves_by_split}
    training = meta_training_curves(out, preset)
    if training:
        save_meta_training_plot(f"{name}_meta_training", training, f"{env_id}: meta-training, mean return per trial")
        text = text.replace("\nPreset: `", f"\nMeta-training curves (mean return per trial against env steps): "
                                           f"![meta-training]({name}_meta_training.png)\n\nPreset: `", 1)
    save_results(name, text, curves, {"env_id": env_id, "preset": args.preset, "n_tasks": n_tasks,
                                      "methods": list(result.methods), "source": result.source, "minutes": total / 60,
                                      "meta_training": training})
    print(text)
    if tmp:
        tmp.cleanup()


def meta_training_curves(out: Path, preset) -> dict[str, list[dict]]:
    """The meta-training curve each method recorded in its checkpoint (RL²), by method name."""
    curves = {}
    for method in preset.methods:
        meta, _ = load_checkpoint(resolve_checkpoint(out / method.slug))
        if meta.get("meta_training"):
            curves[method.name] = meta["meta_training"]
    return curves


def save_meta_training_plot(name: str, curves: dict[str, list[dict]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ad_gym.atomic import atomic_write

    within = any("first_episode" in p for log in curves.values() for p in log)  # logged from 2026-12-01 on
    fig, axes = plt.subplots(1, 2 if within else 1, figsize=(11 if within else 6, 4), squeeze=False)
    for label, log in curves.items():
        steps = [p["steps"] for p in log]
        axes[0, 0].plot(steps, [p["trial_return"] for p in log], label=label)
        if within and all("first_episode" in p for p in log):
            axes[0, 1].plot(steps, [p["first_episode"] for p in log], label=f"{label}: first episode of a trial")
            axes[0, 1].plot(steps, [p["last_episode"] for p in log], label=f"{label}: last episode")
    axes[0, 0].set(xlabel="env steps", ylabel="mean return per trial", title=title)
    axes[0, 0].legend()
    if within:  # learning in context: the last episode of a trial above its first
        axes[0, 1].set(xlabel="env steps", ylabel="mean return per episode", title="within a trial")
        axes[0, 1].legend()
    atomic_write(results_dir() / f"{name}.png", lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)


def minutes(result: PipelineResult, method: str) -> str:
    """A method's training minutes in this run (side by side: its own process's time)."""
    seconds = result.side_by_side.get(f"train {method}", result.seconds.get(f"train {method}"))
    return "-" if seconds is None else f"{seconds / 60:.1f}"


def compare_pretrained(env_id: str, name: str, result: PipelineResult, preset) -> list[str]:
    agent = load_agent(name, env_id=env_id, seed=0)
    method = checkpoint_method(agent.meta)
    fresh = result.curves[method]
    held_out = tasks(env_id, "test")[: preset.test_tasks]
    shipped = play_episodes(lambda rows: agent, env_id, held_out, preset.eval_episodes, list(preset.eval_seeds))
    lines = [leaderboard_table({f"{method}, this run": fresh, f"{method}, shipped `{name}`": shipped}), ""]
    overlaps = []
    for episode in [e for e in REPORT_EPISODES if e <= fresh.shape[1]]:
        (m1, h1), (m2, h2) = mean_ci(fresh, episode), mean_ci(shipped, episode)
        overlaps.append(abs(m1 - m2) <= h1 + h2)
    verdict = "reproduces" if all(overlaps) else "does NOT reproduce"
    lines.append(f"This run {verdict} the shipped model's figures within their 95% intervals at every reported episode.")
    return lines


if __name__ == "__main__":
    main()
