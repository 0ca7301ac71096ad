"""Watermaze probes: where AD's success is lost, with the confounds taken out one at a time.

    # histories from a made-up ideal learner instead of an RL source (train/ and test/ folders)
    python benchmarks/watermaze_probes.py synth replay w_replay        # random until found, then the same actions
    python benchmarks/watermaze_probes.py synth return w_return        # ... then the shortest way back, from any pose
    python benchmarks/watermaze_probes.py synth return w_noisy --eps 0.2   # ... a random action 20% of the time
    # train and play as benchmarks/recipe.py does, with the CNN or with an oracle encoder that
    # hands the model the agent's true pose (x, y, heading) for every view
    python benchmarks/watermaze_probes.py train w_return --out runs/ret
    python benchmarks/watermaze_probes.py train w_return --out runs/ret_pose --encoder pose
    # the model's loss per token of the held-out histories: before any find, in the first episode
    # after the first find (going back needs the platform placed), in later ones
    python benchmarks/watermaze_probes.py losses runs/ret_pose w_return --encoder pose
    # how well a linear map reads the pose from a trained CNN's features (all 324 poses)
    python benchmarks/watermaze_probes.py pose-probe runs/ret
    # how the episodes after a success end: found again, or how close the model came
    python benchmarks/watermaze_probes.py near-misses runs/ret
    # what a folder of source histories shows per stream: success with and without an earlier one
    python benchmarks/watermaze_probes.py source-recall runs/Watermaze-v1-default/histories/test

benchmarks/results/watermaze_recipe.md records what these showed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from minigrid.core.constants import DIR_TO_VEC

import ad_gym  # noqa: F401  (registers the envs)
from ad_gym.agents import ADAgent
from ad_gym.envs.watermaze import watermaze_plan
from ad_gym.data.histories import SUFFIX, History, load_histories, save_history
from ad_gym.data.windows import build_sequences
from ad_gym.envs.tasks import family, tasks
from ad_gym.envs.watermaze import FORWARD, TURN_LEFT, TURN_RIGHT
from ad_gym.evaluation import play_episodes
from ad_gym.models.transformer import ADTransformer
from ad_gym.sources.collect import task_key
from ad_gym.sources.sb3 import SourceConfig, _run_agent

ENV_ID = "Watermaze-v0"


def all_views() -> tuple[list[tuple[int, int, int]], np.ndarray]:
    """Every pose (x, y, heading) of the default arena and the view the agent gets there."""
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    inner = range(1, env.size - 1)
    poses = [(x, y, d) for x in inner for y in inner for d in range(4)]
    views = []
    for x, y, d in poses:
        env.agent_pos, env.agent_dir = np.array([x, y]), d
        views.append(env.gen_obs())
    return poses, np.stack(views)


def next_pose(pose, action, size=11):
    x, y, d = pose
    if action == TURN_LEFT:
        return x, y, (d - 1) % 4
    if action == TURN_RIGHT:
        return x, y, (d + 1) % 4
    nx, ny = x + int(DIR_TO_VEC[d][0]), y + int(DIR_TO_VEC[d][1])
    return (nx, ny, d) if 1 <= nx <= size - 2 and 1 <= ny <= size - 2 else pose


def way_back(platform, poses) -> dict:
    """The first action of a shortest path onto ``platform`` from every pose."""
    platform = tuple(platform)
    steps = {p: 0 if p[:2] == platform else len(poses) for p in poses}
    for _ in range(len(poses)):  # Bellman sweeps until nothing changes
        changed = False
        for p in poses:
            if p[:2] != platform:
                best = 1 + min(steps[next_pose(p, a)] for a in (TURN_LEFT, TURN_RIGHT, FORWARD))
                changed |= best < steps[p]
                steps[p] = min(steps[p], best)
        if not changed:
            break
    return {p: min((TURN_LEFT, TURN_RIGHT, FORWARD), key=lambda a: steps[next_pose(p, a)]) for p in poses}


class IdealLearner:
    """Random actions until an episode is rewarded; afterwards ``replay`` repeats that episode's
    actions, ``return`` takes the shortest way back from wherever it is (a random action with
    probability ``eps``). One independent learner per stream."""

    def __init__(self, kind: str, n_streams: int, platform, eps: float, rng: np.random.Generator, poses: list, pose_of: dict):
        self.pose_of = pose_of  # view bytes -> pose
        self.policy = way_back(platform, poses)
        self.kind, self.eps, self.rng = kind, eps, rng
        self.found = np.zeros(n_streams, dtype=bool)
        self.episode = [[] for _ in range(n_streams)]
        self.replay = [None] * n_streams

    def predict(self, obs):
        actions = self.rng.integers(3, size=len(obs))
        for i in np.flatnonzero(self.found):
            if self.kind == "replay":
                t = len(self.episode[i])
                actions[i] = self.replay[i][t] if t < len(self.replay[i]) else actions[i]
            elif self.rng.random() >= self.eps:
                actions[i] = self.policy[self.pose_of[obs[i].tobytes()]]
        self.last = actions
        return actions, None

    def observe(self, rewards, dones, next_obs=None):
        for i, (reward, done) in enumerate(zip(rewards, dones)):
            self.episode[i].append(int(self.last[i]))
            if reward > 0 and not self.found[i]:
                self.found[i], self.replay[i] = True, self.episode[i]
            if done:
                self.episode[i] = []


def synth(args) -> None:
    config = SourceConfig(algo="oracle", n_streams=args.streams, total_steps=args.streams * args.steps)
    poses, views = all_views()  # rendered once for every task
    pose_of = {view.tobytes(): pose for pose, view in zip(poses, views)}
    for split in ("train", "test"):
        folder = args.out / split
        folder.mkdir(parents=True, exist_ok=True)
        for task in tasks(ENV_ID, split):
            index = family(ENV_ID).index(task)
            learner = IdealLearner(args.kind, args.streams, task["platform"], args.eps, np.random.default_rng(index), poses, pose_of)
            arrays = _run_agent(ENV_ID, task, learner, config, index)
            source = {"algo": f"ideal-{args.kind}", "eps": args.eps}
            history = History(task=task, metadata={"env_id": ENV_ID, "task_index": index, "source": source}, **arrays)
            save_history(history, folder / f"{task_key(task)}{SUFFIX}")
    print(f"wrote {args.out}/train and {args.out}/test")


class PoseEncoder(nn.Module):
    """An oracle in place of the CNN: looks each view up and embeds the agent's true pose."""

    def __init__(self, n_embd: int):
        super().__init__()
        poses, views = all_views()
        # A view is found by a random projection of its pixels: distinct views get distinct keys.
        projection = torch.randn(views[0].size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        self.register_buffer("projection", projection, persistent=False)
        self.register_buffer("keys", torch.from_numpy(views).flatten(1).double() @ projection, persistent=False)
        self.register_buffer("poses", torch.tensor(poses), persistent=False)
        self.x, self.y, self.heading = nn.Embedding(11, n_embd), nn.Embedding(11, n_embd), nn.Embedding(4, n_embd)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        keys = images.flatten(1).double() @ self.projection  # (N,)
        pose = self.poses[(keys[:, None] - self.keys[None]).abs().argmin(dim=1)]
        return self.x(pose[:, 0]) + self.y(pose[:, 1]) + self.heading(pose[:, 2])


def use_pose_encoder() -> None:
    """Make every ADTransformer built from here on (training and loading) read poses, not pixels."""
    import ad_gym.agents.ad_agent
    import ad_gym.training

    class PoseAD(ADTransformer):
        def __init__(self, config):
            super().__init__(config)
            self.image_encoder = PoseEncoder(config.n_embd)

    ad_gym.training.ADTransformer = ad_gym.agents.ad_agent.ADTransformer = PoseAD


def train_and_play(args) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import recipe

    if args.encoder == "pose":
        use_pose_encoder()
    recipe.main([str(args.histories), "--out", str(args.out), "--tasks", "16", "--seeds", "4", "--episodes", "50",
                 "--set", "max_episodes=30", *sum((["--set", s] for s in args.set), [])])


@torch.no_grad()
def losses(args) -> None:
    if args.encoder == "pose":
        use_pose_encoder()
    agent = ADAgent.load(args.run)
    model, data = agent.model.eval(), agent.meta["train"]  # the episodes the model was trained on
    sequences = build_sequences(load_histories(args.histories / "test"), agent.config.n_actions,
                                every_k=data["every_k"], max_episodes=data["max_episodes"])
    totals = {"before any find": [], "first episode after the first find": [], "later episodes": []}
    for start, end in zip(sequences.starts, sequences.ends):
        part = slice(start, end)
        pixels = {name: torch.from_numpy(sequences.obs_table[rows[part]])[None]
                  for name, rows in (("obs", sequences.obs), ("final_obs", sequences.final_obs)) if rows is not None}
        logits = model(**pixels, **{name: torch.from_numpy(getattr(sequences, name)[part])[None]
                                    for name in ("prev_actions", "prev_rewards", "steps")})
        loss = F.cross_entropy(logits[0], torch.from_numpy(sequences.actions[part]), reduction="none").numpy()
        episode = np.cumsum(sequences.steps[part] == 0) - 1  # episode of each token
        rewarded = np.zeros(episode[-1] + 1, dtype=bool)
        rewarded[episode[np.flatnonzero(sequences.prev_rewards[part][1:] > 0)]] = True  # a reward ends its episode
        finds_before = np.concatenate([[0], np.cumsum(rewarded)[:-1]])[episode]
        first_find = np.argmax(rewarded) if rewarded.any() else len(rewarded)
        for name, keep in zip(totals, (finds_before == 0, episode == first_find + 1, episode > first_find + 1)):
            totals[name].append(loss[keep])
    for name, parts in totals.items():
        values = np.concatenate(parts)
        print(f"{name}: {len(values)} tokens, loss {values.mean():.3f} nats")


@torch.no_grad()
def pose_probe(args) -> None:
    poses, views = all_views()
    poses = np.array(poses)
    encoder = ADAgent.load(args.run).model.image_encoder.eval()
    features = encoder(torch.from_numpy(views)).numpy()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(poses))
    fit, held = order[: len(order) * 4 // 5], order[len(order) * 4 // 5 :]
    design = np.concatenate([features, np.ones((len(features), 1))], axis=1)

    def ridge(targets):
        a = design[fit]
        return design[held] @ np.linalg.solve(a.T @ a + 1e-2 * np.eye(a.shape[1]), a.T @ targets[fit])

    x_err, y_err = (np.abs(ridge(poses[:, i]) - poses[held, i]).mean() for i in (0, 1))
    heading = (ridge(np.eye(4)[poses[:, 2]]).argmax(axis=1) == poses[held, 2]).mean()
    print(f"held-out poses: |x error| {x_err:.2f} cells, |y error| {y_err:.2f} cells, heading accuracy {heading:.2f}")


def near_misses(args) -> None:
    """After a success, does the next episode succeed, come close, or go elsewhere?"""
    agent = ADAgent.load(args.run, seed=0)
    platforms = tasks(agent.env_id, args.split)[: args.tasks]
    rows = [task for task in platforms for _ in range(args.seeds)]
    closest = np.full((len(rows), args.episodes), np.inf)  # fewest cells between agent and platform
    steps = np.zeros((len(rows), args.episodes), dtype=np.int64)

    def on_step(row, episode, env, reward, done):
        distance = np.abs(np.array(env.unwrapped.agent_pos) - rows[row]["platform"]).sum()
        closest[row, episode] = min(closest[row, episode], distance)
        steps[row, episode] += 1

    returns = play_episodes(lambda _: agent, agent.env_id, platforms, args.episodes, list(range(args.seeds)), on_step=on_step)
    success = returns > 0
    after = success[:, :-1]  # episodes that follow a success
    again = success[:, 1:][after]
    missed = closest[:, 1:][after][~again]
    moves = family(agent.env_id).kwargs.get("moves", "turn")
    fewest = np.array([len(watermaze_plan(task["platform"], moves=moves)) for task in rows])
    shortest = np.repeat(fewest[:, None], args.episodes - 1, axis=1)[after][again]
    print(f"{after.sum()} episodes after a success: {again.sum()} succeed again "
          f"(median {np.median(steps[:, 1:][after][again] - shortest):.0f} steps more than the shortest path); "
          f"{len(missed)} fail, closest to the platform (cells): "
          + ", ".join(f"{d}: {n}" for d, n in enumerate(np.bincount(missed.astype(int))) if n))


def source_recall(args) -> None:
    """Per stream, over its first ``--episodes`` episodes: how often an episode succeeds with no
    success earlier in the stream, right after a success, and after a failure once found."""
    first_finds, after_success, after_failure = [], [], []
    streams = [r[: args.episodes] > 0 for h in load_histories(args.histories) for r in h.episode_returns()]
    for success in streams:
        found = np.maximum.accumulate(success)  # a success at or before each episode
        first_finds.append(success[np.concatenate([[True], ~found[:-1]])])
        after_success.append(success[1:][success[:-1]])
        after_failure.append(success[1:][~success[:-1] & found[:-1]])
    first_finds, after_success, after_failure = (np.concatenate(x) for x in (first_finds, after_success, after_failure))
    print(f"{len(streams)} streams, first {args.episodes} episodes each: with no success before, {first_finds.mean():.3f} "
          f"succeed ({len(first_finds)} episodes); P(success | success before it) {after_success.mean():.3f}; "
          f"P(success | failure, found earlier) {after_failure.mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("synth", help="histories of an ideal learner")
    p.add_argument("kind", choices=["replay", "return"])
    p.add_argument("out", type=Path)
    p.add_argument("--eps", type=float, default=0.0, help="return: probability of a random action")
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--steps", type=int, default=1200, help="steps per stream")
    p.set_defaults(handler=synth)
    p = commands.add_parser("train", help="train on histories/train and play 16 held-out platforms x 4 seeds")
    p.add_argument("histories", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--encoder", choices=["cnn", "pose"], default="cnn")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    p.set_defaults(handler=train_and_play)
    p = commands.add_parser("losses", help="held-out loss before and after the first find")
    p.add_argument("run", type=Path)
    p.add_argument("histories", type=Path)
    p.add_argument("--encoder", choices=["cnn", "pose"], default="cnn")
    p.set_defaults(handler=losses)
    p = commands.add_parser("pose-probe", help="linear read-out of the pose from the CNN's features")
    p.add_argument("run", type=Path)
    p.set_defaults(handler=pose_probe)
    p = commands.add_parser("near-misses", help="how the episodes after a success end")
    p.add_argument("run", type=Path)
    p.add_argument("--split", default="test", help="platforms to play: test (held out, the default) or train")
    p.add_argument("--tasks", type=int, default=16, help="the split's first N platforms")
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--seeds", type=int, default=4)
    p.set_defaults(handler=near_misses)
    p = commands.add_parser("source-recall", help="per stream: success before and after the stream's first")
    p.add_argument("histories", type=Path, help="a folder of source histories")
    p.add_argument("--episodes", type=int, default=30)
    p.set_defaults(handler=source_recall)
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()
