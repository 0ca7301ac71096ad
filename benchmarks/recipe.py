"""One recipe experiment: train AD on collected histories, play held-out tasks, and say where the
return is lost: finding the goal at all, or going back to it once found.

    ad-gym collect DarkKeyToDoor-v1 --split train --max-tasks 300 --steps 64000 --streams 32 --out h/train
    ad-gym collect DarkKeyToDoor-v1 --split test --max-tasks 40 --steps 64000 --streams 32 --out h/test
    python benchmarks/recipe.py h --out runs/u5k --set max_episodes=60 --set updates=5000 --set warmup=200

    ad-gym collect Watermaze-v0 --split train --algo ppo --steps 16000 --streams 8 --out w/train
    ad-gym collect Watermaze-v0 --split test --algo ppo --steps 16000 --streams 8 --out w/test
    python benchmarks/recipe.py w --out runs/w6k --tasks 16 --seeds 4 --episodes 50 \
        --set max_episodes=30 --set updates=6000 --set warmup=200

Prints the mean return over blocks of episodes (held-out tasks x seeds, all episodes in one
context) and, from the returns alone, the goal's statistics. An episode "reaches the goal" when
its return is the task's optimal return (Key-to-Door: 2, key and door; Watermaze: 1, the
platform): how many rows ever reach it, the goal rate over the second half of the episodes, the
goal's recall, P(goal in episode t+1 | goal in episode t), against its rediscovery,
P(goal in t+1 | none in t). benchmarks/results/keytodoor_recipe.md and watermaze_recipe.md record
the runs behind the presets.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ad_gym.agents import ADAgent
from ad_gym.cli import parse_pairs
from ad_gym.envs.tasks import tasks
from ad_gym.evaluation import play_episodes
from ad_gym.sources.summary import optimal_return
from ad_gym.training import TrainConfig, train

BLOCKS = [(1, 5), (6, 10), (11, 20), (21, 30), (31, 40), (41, 50), (51, 80), (81, 100)]


def goal_report(returns: np.ndarray, goal_return: float) -> dict[str, float]:
    """Returns (rows, episodes) read as goal events: an episode reaches the goal when its return
    is at least ``goal_return``; any reward at all counts as a first step (Key-to-Door's key)."""
    goal = returns >= goal_return
    before, after = goal[:, :-1], goal[:, 1:]
    late = returns.shape[1] // 2
    return {
        "rows that ever reach the goal": float(goal.any(axis=1).mean()),
        "any-reward rate, second half": float((returns[:, late:] > 0).mean()),
        "goal rate, second half": float(goal[:, late:].mean()),
        "P(goal t+1 | goal t)": float(after[before].mean()) if before.any() else float("nan"),
        "P(goal t+1 | no goal t)": float(after[~before].mean()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("histories", type=Path, help="folder with train/ and test/ history folders")
    parser.add_argument("--out", type=Path, required=True, help="training folder (resumes)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a TrainConfig field")
    parser.add_argument("--tasks", type=int, default=40, help="held-out tasks to play (default: 40)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per held-out task (default: 2)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes in one context (default: 100)")
    args = parser.parse_args(argv)

    config = TrainConfig(**{"every_k": 1, "max_episodes": 20, **parse_pairs(args.set, "--set")})
    start = time.perf_counter()
    checkpoint = train(args.histories / "train", args.out, config, val_path=args.histories / "test")
    minutes = (time.perf_counter() - start) / 60
    agent = ADAgent.load(checkpoint, seed=0)  # plays the env its histories were recorded on
    held_out = tasks(agent.env_id, "test")[: args.tasks]
    returns = play_episodes(lambda rows: agent, agent.env_id, held_out, args.episodes, list(range(args.seeds)))
    np.save(args.out / "returns.npy", returns)
    mean = returns.mean(axis=0)
    blocks = [(a, b) for a, b in BLOCKS if b <= args.episodes]
    print(f"trained {minutes:.1f} min; validation loss {agent.meta['log'][-1].get('val_loss')}")
    print("return by episode block: " + ", ".join(f"{a}-{b}: {mean[a - 1 : b].mean():.2f}" for a, b in blocks))
    goal_return = optimal_return(agent.env_id, held_out[0])
    print(json.dumps({k: round(v, 3) for k, v in goal_report(returns, goal_return).items()}, indent=1))


if __name__ == "__main__":
    main()
