"""One Key-to-Door recipe experiment: train AD on collected histories, play held-out pairs, and
say where the return is lost (the key, finding the door, or recalling it).

    ad-gym collect DarkKeyToDoor-v1 --split train --max-tasks 300 --steps 64000 --streams 32 --out h/train
    ad-gym collect DarkKeyToDoor-v1 --split test --max-tasks 40 --steps 64000 --streams 32 --out h/test
    python benchmarks/keytodoor_recipe.py h --out runs/u5k --set max_episodes=60 --set updates=5000 --set warmup=200

Prints the mean return over blocks of episodes (first 40 held-out pairs x 2 seeds, 100 episodes
in one context) and, from the returns alone (1 = key only, 2 = key and door): how many rows
ever open the door, the key and door rates over episodes 51-100, and the door's recall,
P(door in episode t+1 | door in episode t), against its rediscovery, P(door in t+1 | none in t).
benchmarks/results/keytodoor_recipe.md records the runs behind the presets.
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
from ad_gym.training import TrainConfig, train

BLOCKS = [(1, 5), (6, 10), (11, 20), (21, 40), (41, 50), (51, 80), (81, 100)]


def door_report(returns: np.ndarray) -> dict[str, float]:
    """Key-to-Door returns (rows, episodes) read as key (>= 1) and door (== 2) events."""
    door = returns >= 2
    before, after = door[:, :-1], door[:, 1:]
    return {
        "rows that ever open the door": float(door.any(axis=1).mean()),
        "key rate, episodes 51-100": float((returns[:, 50:] >= 1).mean()),
        "door rate, episodes 51-100": float(door[:, 50:].mean()),
        "P(door t+1 | door t)": float(after[before].mean()) if before.any() else float("nan"),
        "P(door t+1 | no door t)": float(after[~before].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("histories", type=Path, help="folder with train/ and test/ history folders")
    parser.add_argument("--out", type=Path, required=True, help="training folder (resumes)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a TrainConfig field")
    parser.add_argument("--tasks", type=int, default=40, help="held-out pairs to play (default: 40)")
    args = parser.parse_args()

    config = TrainConfig(**{"every_k": 1, "max_episodes": 20, **parse_pairs(args.set, "--set")})
    start = time.perf_counter()
    checkpoint = train(args.histories / "train", args.out, config, val_path=args.histories / "test")
    minutes = (time.perf_counter() - start) / 60
    agent = ADAgent.load(checkpoint, seed=0)  # plays the env its histories were recorded on
    returns = play_episodes(lambda rows: agent, agent.env_id, tasks(agent.env_id, "test")[: args.tasks], 100, [0, 1])
    np.save(args.out / "returns.npy", returns)
    mean = returns.mean(axis=0)
    print(f"trained {minutes:.1f} min; validation loss {agent.meta['log'][-1].get('val_loss')}")
    print("return by episode block: " + ", ".join(f"{a}-{b}: {mean[a - 1 : b].mean():.2f}" for a, b in BLOCKS))
    print(json.dumps({k: round(v, 3) for k, v in door_report(returns).items()}, indent=1))


if __name__ == "__main__":
    main()
