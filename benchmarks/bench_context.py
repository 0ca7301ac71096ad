"""In-context RL needs a context that spans episodes: AD trained with contexts of 1, 2, 4 and 8
episodes, otherwise the default preset's recipe, on held-out tasks.

    python benchmarks/bench_context.py                         # Dark Room: 1 2 4 8 episodes
    python benchmarks/bench_context.py DarkKeyToDoor-v1 --episodes 1 2 4 --method AD-PS
    python benchmarks/bench_context.py --histories runs/darkroom/histories   # reuse a run's source

Every arm trains on the same source histories (collected once in OUT/histories, or taken from
``--histories``) with the same training sequences: only the attention span changes (the banded
model trains on sequences longer than its context, so every update sees the same tokens). The
paper's Key-to-Door figures: 1 / 2 / 4 episodes of context gave ~1.12 / 1.76 / 1.84. Each arm
resumes in OUT/ctx<k>. Writes benchmarks/results/context_<family>.md and .png.

``--method`` varies another AD-trained method of the default preset instead (AD's trainer and
model on other histories, e.g. AD-PS on Key-to-Door v1, where the default's AD, on 40 A2C pairs,
does not learn in context at any context length).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path


from ad_gym.envs.tasks import canonical_env_id
from ad_gym.evaluation import block_means, iqm_table, leaderboard_table
from ad_gym.pipeline import run_pipeline
from common import apart, default_ad, episode_steps, family_name, save_plot, save_results


def share_histories(out: Path, histories: Path | None) -> Path:
    """One folder of histories for every arm: each arm's run folder links to it, so the pipeline
    finds the source's histories finished and collects nothing again."""
    shared = (histories or out / "histories").resolve()
    shared.mkdir(parents=True, exist_ok=True)
    return shared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id", nargs="?", default="DarkRoom-v0")
    parser.add_argument("--episodes", nargs="+", type=int, default=[1, 2, 4, 8], help="context lengths in episodes")
    parser.add_argument("--out", type=Path, default=Path("runs/context"), help="run folders, one per arm (resumable)")
    parser.add_argument("--histories", type=Path, help="a pipeline run's histories folder to train on (default: OUT/histories)")
    parser.add_argument("--name", help="results file name (default: context_<family>)")
    parser.add_argument("--method", default="AD", help="the default preset's method to vary (default: AD)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 train tasks, 2 held-out, 20 updates, 10 episodes")
    args = parser.parse_args()
    if not args.episodes or min(args.episodes) < 1:
        parser.error(f"--episodes must be positive integers, got {args.episodes}")
    env_id = canonical_env_id(args.env_id)
    base, ad = default_ad(env_id, args.quick, args.method)  # the one method this experiment is about
    steps = episode_steps(env_id)
    shared = share_histories(args.out, args.histories)
    # The recipe's training sequences for every arm, longer where a context needs it.
    seq_len = max(ad.config.seq_len, max(args.episodes) * steps * 3 // 2)

    curves, minutes, n_tasks = {}, {}, None
    for k in sorted(set(args.episodes)):
        config = dataclasses.replace(ad.config, context_len=k * steps, seq_len=seq_len)
        preset = dataclasses.replace(base, methods=(dataclasses.replace(ad, config=config),))
        out = args.out / f"ctx{k}"
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "histories").exists():
            os.symlink(shared, out / "histories", target_is_directory=True)
        start = time.perf_counter()
        result = run_pipeline(env_id, preset, out, seed=args.seed)
        minutes[k] = (time.perf_counter() - start) / 60
        curves[f"{ad.name}, context {k} episode{'s' if k > 1 else ''} ({k * steps} steps)"] = result.curves[ad.name]
        n_tasks = len(result.curves[ad.name]) // len(base.eval_seeds)
    for label in (result.source, "random", "oracle (task known)"):
        curves[label] = result.curves[label]

    name = args.name or f"context_{family_name(env_id)}"
    save_plot(name, curves, f"{env_id}: {ad.name} with contexts of different lengths")
    ad_rows = {label: c for label, c in curves.items() if label.startswith(f"{ad.name}, context")}
    n = min(c.shape[1] for c in ad_rows.values())
    late = (max(1, n - 9), n)
    blocks = {label: block_means(c, *late) for label, c in ad_rows.items()}
    shortest, longest = next(iter(blocks)), list(blocks)[-1]
    verdict = ("the shortest context is clearly below the longest (intervals separate)" if apart(blocks[longest], blocks[shortest])
               else "the intervals of the shortest and longest contexts overlap")
    command = shlex.join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    text = "\n".join([
        f"# {env_id}: {ad.name} with contexts of {', '.join(map(str, sorted(set(args.episodes))))} episodes",
        "",
        f"Command: `{command}`",
        "",
        f"The default preset's {ad.name} recipe on the same histories, {seq_len}-token training sequences for every "
        f"arm; only the context (the tokens each prediction attends to) changes. Held-out tasks x {len(base.eval_seeds)} "
        f"seeds, {base.eval_episodes} episodes in one context, frozen weights, actions sampled. Mean return ± half-width "
        "of the 95% interval.",
        "",
        leaderboard_table(curves),
        "",
        "Interquartile mean [95% stratified bootstrap interval]:",
        "",
        iqm_table(ad_rows, n_tasks=n_tasks),
        "",
        f"![context]({name}.png)",
        "",
        f"Episodes {late[0]}-{late[1]}: " + ", ".join(f"{label.split(' (')[0]} {m:.2f} ± {h:.2f}" for label, (m, h) in blocks.items())
        + f". Verdict: {verdict}.",
        "",
        "Minutes per arm (train, evaluate): " + ", ".join(f"{k} episodes {m:.1f}" for k, m in minutes.items()) + ".",
    ]) + "\n"
    save_results(name, text, curves, {"env_id": env_id, "n_tasks": n_tasks, "episode_steps": steps,
                                      "context_episodes": sorted(set(args.episodes)), "minutes": minutes,
                                      "method": ad.name})
    print(text)


if __name__ == "__main__":
    main()
