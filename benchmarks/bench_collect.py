"""Throughput of the Dark Room env and of learning-history collection, and the curve recorded.

    python benchmarks/bench_collect.py            # env speed + 8 tasks at 1 and 2 processes
    python benchmarks/bench_collect.py --full     # ... + the whole default train split

Writes benchmarks/results/collect.md (and prints it). Timings depend on the machine: compare
the numbers of one run with each other, not with another machine's.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import ad_gym
from ad_gym.sources.collect import collect, default_workers
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.sources.summary import summarize

RESULTS = Path(__file__).parent / "results"


def env_steps_per_second(env_id: str, steps: int) -> dict[str, float]:
    """Random actions through gym.make (with its checker and order wrappers) and on the bare env."""
    rates = {}
    for label, make in (("gym.make", lambda: gym.make(env_id)), ("unwrapped", lambda: gym.make(env_id).unwrapped)):
        env = make()
        env.reset(seed=0)
        actions = np.random.default_rng(0).integers(env.action_space.n, size=steps)
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        rates[label] = steps / (time.perf_counter() - start)
    return rates


def timed_collect(env_id: str, out: Path, workers: int, max_tasks: int | None, config: SourceConfig):
    start = time.perf_counter()
    results = collect(env_id, out, split="train", config=config, max_tasks=max_tasks, workers=workers, seed=0)
    seconds = time.perf_counter() - start
    steps = sum(r.steps for r in results)
    return seconds, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-id", default="DarkRoom-v0")
    parser.add_argument("--tasks", type=int, default=8, help="tasks for the 1- vs 2-process comparison")
    parser.add_argument("--env-steps", type=int, default=200_000, help="steps for the single-env measurement")
    parser.add_argument("--full", action="store_true", help="also collect the whole default train split")
    parser.add_argument("--out", type=Path, default=RESULTS / "collect.md")
    args = parser.parse_args()
    config = SourceConfig()
    lines = [
        f"# History collection throughput: {args.env_id}",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} {shlex.join(sys.argv[1:])}`",
        "",
        f"Machine: {platform.machine()}, {default_workers()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, ad_gym {ad_gym.__version__}. "
        f"Source: {config.algo.upper()}, {config.n_streams} streams, {config.total_steps:,} env steps per task, "
        f"hyperparameters {config.algo_kwargs()} (SB3 defaults otherwise).",
        "",
        "## A single env, random actions",
        "",
        "| env | steps/s |",
        "| --- | --- |",
    ]
    for label, rate in env_steps_per_second(args.env_id, args.env_steps).items():
        lines.append(f"| `{args.env_id}` via {label} | {rate:,.0f} |")

    lines += ["", f"## Collecting {args.tasks} train tasks", "", "| processes | seconds | env steps/s | speed-up |", "| --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}"
            seconds, steps = timed_collect(args.env_id, out, workers, args.tasks, config)
            base = base or seconds
            lines.append(f"| {workers} | {seconds:.1f} | {steps / seconds:,.0f} | {base / seconds:.2f}x |")
        lines += ["", "Learning curve recorded (2-process run):", "", summarize(ad_gym.load_histories(out))]

        if args.full:
            out = Path(tmp) / "full"
            seconds, steps = timed_collect(args.env_id, out, default_workers(), None, config)
            lines += [
                "",
                f"## The whole default train split ({len(ad_gym.tasks(args.env_id, 'train'))} tasks, "
                f"{default_workers()} processes): `ad-gym collect {args.env_id}`",
                "",
                f"{seconds:.0f} s ({seconds / 60:.1f} min), {steps / seconds:,.0f} env steps/s.",
                "",
                summarize(ad_gym.load_histories(out)),
            ]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
