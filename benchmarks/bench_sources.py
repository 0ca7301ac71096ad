"""AD distils any source: the same AD recipe on histories of SB3 A2C, PPO and DQN, each against
the source it came from, with the data efficiency of learning in context.

    python benchmarks/bench_sources.py                      # Dark Room: a2c ppo dqn
    python benchmarks/bench_sources.py --sources ppo --out /tmp/sources

For each source the Dark Room default preset runs with that source in place of A2C and AD alone
(`ad-gym run` with a custom preset; each run resumes in OUT/<source>). Data efficiency: the
episodes (and env steps) AD needs on held-out goals to reach 50% and 80% of the oracle's return
(a 5-episode trailing mean over all rows), against the source learning the same goals from
scratch, and their ratio. Writes benchmarks/results/sources_<family>.md and .png.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ad_gym.data.histories import load_histories
from ad_gym.envs.tasks import canonical_env_id
from ad_gym.evaluation import episodes_to_reach, iqm_table, leaderboard_table, learner_episode_returns
from ad_gym.pipeline import run_pipeline
from common import default_ad, episode_steps, family_name, save_plot, save_results

SHARES = (0.5, 0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id", nargs="?", default="DarkRoom-v0")
    parser.add_argument("--sources", nargs="+", default=["a2c", "ppo", "dqn"], help="SB3 algorithms (default: a2c ppo dqn)")
    parser.add_argument("--out", type=Path, default=Path("runs/sources"), help="run folders, one per source (resumable)")
    parser.add_argument("--name", help="results file name (default: sources_<family>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 train tasks, 2 held-out, 20 updates, 10 episodes")
    args = parser.parse_args()
    env_id = canonical_env_id(args.env_id)
    base, ad = default_ad(env_id, args.quick)  # AD is the one method this experiment is about
    steps_per_episode = episode_steps(env_id)

    curves, wholes, rows, minutes, n_tasks = {}, {}, [], {}, None
    for algo in args.sources:
        preset = dataclasses.replace(base, source=dataclasses.replace(base.source, algo=algo, hyperparams={}),
                                     methods=(ad,))
        start = time.perf_counter()
        result = run_pipeline(env_id, preset, args.out / algo, seed=args.seed)
        minutes[algo] = (time.perf_counter() - start) / 60
        optimal = float(result.curves["oracle (task known)"].mean())
        own, source = result.curves["AD"], result.curves[result.source]
        n_tasks = len(own) // len(base.eval_seeds)
        curves[f"AD from {algo.upper()}"], curves[result.source] = own, source
        # The source's whole run on the held-out tasks (the leaderboard row stops at AD's episodes).
        whole = wholes[f"{result.source}, whole run"] = full_source_curve(args.out / algo / "histories" / "test", env_id)
        cells = []
        for share in SHARES:
            need_ad, need_source = episodes_to_reach(own, share * optimal), episodes_to_reach(whole, share * optimal)
            ratio = f"{need_source / need_ad:.1f}x" if need_ad and need_source else "n/a"
            cells.append(f"{_episodes(need_ad, steps_per_episode)} | {_episodes(need_source, steps_per_episode)} | {ratio}")
        rows.append(f"| {algo.upper()} | " + " | ".join(cells) + " |")
        if len(result.methods) != 1:
            raise RuntimeError(f"expected AD alone, got {result.methods}")

    name = args.name or f"sources_{family_name(env_id)}"
    save_plot(name, curves, f"{env_id}: AD distilled from each source, against the source")
    header = " | ".join(f"AD to {int(s * 100)}% | source to {int(s * 100)}% | ratio" for s in SHARES)
    command = shlex.join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    text = "\n".join([
        f"# {env_id}: AD distilled from different sources",
        "",
        f"Command: `{command}`",
        "",
        "The default preset's AD recipe on each source's histories; AD's rows are in-context episodes on held-out "
        "tasks with frozen weights, each source's its own episodes on the same tasks, learning from scratch. "
        "Mean return ± half-width of the 95% interval.",
        "",
        leaderboard_table(curves),
        "",
        "Interquartile mean [95% stratified bootstrap interval]:",
        "",
        iqm_table({k: v for k, v in curves.items() if k.startswith("AD")}, n_tasks=n_tasks),
        "",
        f"![sources]({name}.png)",
        "",
        "## Data efficiency: episodes (env steps) to reach a share of the oracle's return",
        "",
        "Each source's episodes are counted over its whole run on the held-out tasks (all its streams' "
        "episodes in the order its learner played them), AD's over its in-context episodes.",
        "",
        f"| source | {header} |",
        "| --- |" + " --- |" * (3 * len(SHARES)),
        *rows,
        "",
        "Minutes per source (collect, train, evaluate): " + ", ".join(f"{a.upper()} {m:.1f}" for a, m in minutes.items()) + ".",
    ]) + "\n"
    save_results(name, text, {**curves, **wholes}, {"env_id": env_id, "n_tasks": n_tasks, "minutes": minutes,
                                                   "steps_per_episode": steps_per_episode, "optimal": optimal})
    print(text)


def full_source_curve(folder: Path, env_id: str):
    """Every episode the source played on each held-out task, as its learner experienced them."""
    rows = [learner_episode_returns(h) for h in load_histories(folder, env_id=env_id, compact=True)]
    width = min(r.shape[1] for r in rows)
    return np.concatenate([r[:, :width] for r in rows])


def _episodes(n: int | None, steps_per_episode: int | None) -> str:
    if n is None:
        return "not reached"
    return f"{n} ({n * steps_per_episode} steps)" if steps_per_episode else str(n)


if __name__ == "__main__":
    main()
