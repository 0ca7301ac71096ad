"""The Dark Room leaderboard: the whole AD pipeline on a preset, timed, checked against the bar.

    python benchmarks/bench_darkroom.py --preset default
    python benchmarks/bench_darkroom.py --preset full

Runs collect -> train AD and ED -> in-context evaluation in a fresh folder, and writes
benchmarks/results/darkroom_<preset>.md (table, timings, peak memory, the issue's bar) and
darkroom_<preset>.png. With ``--compare-pretrained`` it also evaluates the shipped pretrained
model the same way and says whether the fresh run reproduces it within the 95% intervals.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import ad_gym
from ad_gym.agents import ADAgent
from ad_gym.envs.tasks import tasks
from ad_gym.evaluation import REPORT_EPISODES, leaderboard_table, mean_ci, play_episodes
from ad_gym.pipeline import get_preset, run_pipeline

RESULTS = Path(__file__).parent / "results"
ENV_ID = "DarkRoom-v0"


def block_mean(returns: np.ndarray, first: int, last: int) -> float:
    """Mean return over 1-based episodes first..last (all rows)."""
    return float(returns[:, first - 1 : last].mean())


def bar_lines(curves: dict[str, np.ndarray]) -> list[str]:
    ad, ed, source = curves["AD"], curves["ED"], curves["source (A2C, from scratch)"]
    early, late = block_mean(ad, 1, 5), block_mean(ad, 41, 50)
    lines = [
        f"- AD, episodes 41-50: **{late:.2f}**; episodes 1-5: {early:.2f}; ratio {late / max(early, 1e-9):.1f}x",
        f"- AD at episode 40: {mean_ci(ad, 40)[0]:.2f}; at episode 100: {mean_ci(ad, 100)[0]:.2f}"
        if ad.shape[1] >= 100 else "",
        f"- ED, episodes 1-5: {block_mean(ed, 1, 5):.2f}; 41-50: {block_mean(ed, 41, 50):.2f} (flat: no in-context improvement)",
        f"- source learning from scratch (all its streams' episodes in the order it played them), episode 50: "
        f"{mean_ci(source, 50)[0]:.2f}; episodes 41-50: {block_mean(source, 41, 50):.2f}",
    ]
    return [line for line in lines if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="pipeline folder (default: a fresh temporary one)")
    parser.add_argument("--save-checkpoint", type=Path, help="copy the AD checkpoint here (to ship it)")
    parser.add_argument("--compare-pretrained", action="store_true", help="also evaluate the shipped model")
    args = parser.parse_args()
    preset = get_preset(ENV_ID, args.preset)

    tmp = None if args.out else tempfile.TemporaryDirectory()
    out = args.out or Path(tmp.name) / "run"
    start = time.perf_counter()
    result = run_pipeline(ENV_ID, args.preset, out, seed=args.seed)
    total = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    peak_children_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20

    name = f"darkroom_{args.preset}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "returns.png", RESULTS / f"{name}.png")
    n_rows = result.curves["AD"].shape[0]
    lines = [
        f"# Dark Room, preset `{args.preset}`: in-context returns on the held-out goals",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}` "
        f"(same pipeline as `ad-gym run {ENV_ID} --preset {args.preset}`)",
        "",
        f"{len(tasks(ENV_ID, 'test'))} held-out goals x {len(preset.eval_seeds)} seeds = {n_rows} rows per method; "
        f"{preset.eval_episodes} consecutive episodes per row in one context, frozen weights, actions sampled. "
        "Mean return ± half-width of the 95% interval. Source: its own per-episode returns on the same goals, "
        f"all {preset.source.n_streams} streams' episodes in the order the learner played them.",
        "",
        leaderboard_table(result.curves),
        "",
        f"![returns]({name}.png)",
        "",
        "## Against the bar",
        "",
        *bar_lines(result.curves),
        "",
        "## Cost",
        "",
        f"Machine: {torch.get_num_threads()} torch threads, torch {torch.__version__}, ad_gym {ad_gym.__version__}. "
        f"Total {total / 60:.1f} min: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in result.seconds.items()) + ". "
        f"Peak memory: {peak_gib:.2f} GiB (main process), {peak_children_gib:.2f} GiB (largest collection worker).",
        "",
        f"Preset: `{preset}`",
    ]
    if args.save_checkpoint:
        agent = ADAgent.load(out / "ad", seed=0)
        agent.meta["provenance"]["command"] = f"ad-gym run {ENV_ID} --preset {args.preset} --seed {args.seed}"
        agent.save(args.save_checkpoint)
        lines += ["", f"AD checkpoint saved to `{args.save_checkpoint}`."]
    if args.compare_pretrained:
        lines += ["", "## The shipped pretrained model against this run", "", *compare_pretrained(result.curves["AD"], preset)]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
    if tmp:
        tmp.cleanup()


def compare_pretrained(fresh: np.ndarray, preset) -> list[str]:
    agent = ADAgent.load("darkroom", seed=0)
    shipped = play_episodes(lambda rows: agent, ENV_ID, tasks(ENV_ID, "test"), preset.eval_episodes, list(preset.eval_seeds))
    lines = [leaderboard_table({"AD, this run": fresh, "AD, shipped `darkroom`": shipped}), ""]
    overlaps = []
    for episode in [e for e in REPORT_EPISODES if e <= fresh.shape[1]]:
        (m1, h1), (m2, h2) = mean_ci(fresh, episode), mean_ci(shipped, episode)
        overlaps.append(abs(m1 - m2) <= h1 + h2)
    verdict = "reproduces" if all(overlaps) else "does NOT reproduce"
    lines.append(f"This run {verdict} the shipped model's figures within their 95% intervals at every reported episode.")
    return lines


if __name__ == "__main__":
    main()
