"""The paper's prompt experiment: AD and ED prompted with poor episodes, then playing on.

    python benchmarks/bench_prompt.py RUN                     # RUN: an `ad-gym run DarkRoom-v0` folder
    python benchmarks/bench_prompt.py RUN --methods ad ed dpt --prompt-episodes 4 --episodes 50

Each held-out task of the run is played from three contexts: empty; a **suboptimal** prompt (the
first episodes the source learner played on that task, from the run's held-out histories: a
policy far from optimal); a **misleading** prompt (another task's oracle walking to a wrong target
and earning as little as it can). The paper (Dark Room): prompted at ~5% of optimal, AD improves
past the prompt while ED only holds the level it was shown. Writes
benchmarks/results/prompt_<family>.md and .png.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ad_gym.agents import load_agent
from ad_gym.checkpoints import checkpoint_method
from ad_gym.data.histories import load_histories
from ad_gym.envs.tasks import task_key, tasks
from ad_gym.evaluation import iqm_table, leaderboard_table, play_episodes
from ad_gym.prompts import history_prompt, misleading_prompt, stack_prompts
from common import family_name, rise, save_plot, save_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a pipeline run folder (ad-gym run ENV --out RUN)")
    parser.add_argument("--methods", nargs="+", default=["ad", "ed"], help="method folders in RUN to prompt (default: ad ed)")
    parser.add_argument("--prompt-episodes", type=int, default=4, help="episodes in each prompt (default 4)")
    parser.add_argument("--episodes", type=int, default=50, help="episodes played after the prompt (default 50)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--name", help="results file name (default: prompt_<family>)")
    args = parser.parse_args()
    start = time.perf_counter()

    agents = {slug: load_agent(args.run / slug, seed=0) for slug in args.methods}
    env_ids = {agent.env_id for agent in agents.values()}
    if len(env_ids) != 1:
        raise SystemExit(f"the methods were trained on different envs: {sorted(env_ids)}")
    env_id = env_ids.pop()
    histories = {task_key(h.task): h for h in load_histories(args.run / "histories" / "test", env_id=env_id)}
    held_out = [t for t in tasks(env_id, "test") if task_key(t) in histories]
    if not held_out:
        raise SystemExit(f"{args.run}/histories/test holds no held-out task of {env_id}")
    prompts = {
        "suboptimal": {task_key(t): history_prompt(histories[task_key(t)], args.prompt_episodes) for t in held_out},
        "misleading": {task_key(t): misleading_prompt(env_id, t, tasks(env_id, "train"), args.prompt_episodes)
                       for t in held_out},
    }
    levels = {kind: float(np.mean([p.episode_returns().mean() for p in by_task.values()])) for kind, by_task in prompts.items()}

    curves = {}
    for agent in agents.values():
        name = checkpoint_method(agent.meta)
        curves[f"{name}, no prompt"] = play_episodes(lambda rows: agent, env_id, held_out, args.episodes, args.seeds)
        for kind, by_task in prompts.items():
            batch = lambda rows, by_task=by_task: stack_prompts([by_task[task_key(t)] for t in rows])  # noqa: E731
            curves[f"{name}, {kind} prompt"] = play_episodes(lambda rows: agent, env_id, held_out, args.episodes,
                                                             args.seeds, prompt=batch)

    name = args.name or f"prompt_{family_name(env_id)}"
    save_plot(name, curves, f"{env_id}: after a prompt of {args.prompt_episodes} episodes")
    width = min(10, args.episodes)
    late = args.episodes - width + 1
    lines = []
    early_width = min(5, args.episodes)
    for key, returns in curves.items():
        (early, early_half), (mean, half), rose = rise(returns, (late, args.episodes), early=(1, early_width))
        rises = "rises" if rose else "does not rise (intervals overlap)"
        kind = next((k for k in prompts if f", {k} prompt" in key), None)
        against = "" if kind is None else (
            f"; against the prompt's {levels[kind]:.2f} per episode: "
            + ("above it" if mean - half > levels[kind] else "below it" if mean + half < levels[kind] else "at it"))
        lines.append(f"- {key}: episodes 1-{early_width} {early:.2f} ± {early_half:.2f}, {late}-{args.episodes} "
                     f"**{mean:.2f} ± {half:.2f}**: {rises}{against}")
    command = shlex.join(["python", f"benchmarks/{Path(__file__).name}", *sys.argv[1:]])
    text = "\n".join([
        f"# {env_id}: in-context learning after a prompt",
        "",
        f"Command: `{command}`",
        "",
        f"{len(held_out)} held-out tasks x {len(args.seeds)} seeds; each row first gets a prompt of "
        f"{args.prompt_episodes} whole episodes (`ADAgent.prompt`), then plays {args.episodes} episodes in the same "
        f"context with frozen weights, actions sampled. Prompts: **suboptimal**, the source learner's first "
        f"{args.prompt_episodes} episodes on the task (mean return {levels['suboptimal']:.2f} per episode); "
        f"**misleading**, a training task's oracle walking to its own target on this task (mean return "
        f"{levels['misleading']:.2f}). Mean return ± half-width of the 95% interval.",
        "",
        leaderboard_table(curves),
        "",
        "Interquartile mean [95% stratified bootstrap interval] over tasks x seeds:",
        "",
        iqm_table(curves, len(held_out)),
        "",
        f"![prompt]({name}.png)",
        "",
        "## Against the paper (AD improves past a suboptimal prompt, ED holds it)",
        "",
        "A method improves past a prompt when its late episodes rise above its first ones and above the prompt's level.",
        "",
        *lines,
        "",
        f"Took {(time.perf_counter() - start) / 60:.1f} min.",
    ]) + "\n"
    save_results(name, text, curves, {"env_id": env_id, "n_tasks": len(held_out), "prompt_levels": levels,
                                      "prompt_episodes": args.prompt_episodes, "minutes": (time.perf_counter() - start) / 60})
    print(text)


if __name__ == "__main__":
    main()
