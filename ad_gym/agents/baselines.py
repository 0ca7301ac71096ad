"""Reference agents with the same ``predict`` / ``observe`` interface as `ADAgent`."""

from __future__ import annotations

import numpy as np

from ad_gym.envs.dark_room import DOWN, LEFT, NOOP, RIGHT, UP


class RandomAgent:
    """Uniformly random actions."""

    def __init__(self, action_space, seed: int | None = None):
        self.n_actions = int(action_space.n)
        self.rng = np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        n = obs.shape[0] if obs.ndim == 2 else None
        actions = self.rng.integers(self.n_actions, size=n or 1)
        return (actions if n else actions[0]), state

    def observe(self, reward, done=None, state=None):
        pass


class GridOracle:
    """Knows each env's target cells and walks straight to them in order (x first, then y).

    ``targets[i]`` lists env i's cells: ``[goal]`` in Dark Room, ``[key, door]`` in Dark
    Key-to-Door. The oracle heads for the next target, moves on to the following one when a step
    pays a reward, and waits on the last one (no-op); every episode starts again from the first.
    It follows the rewards through `observe`, like `ADAgent`.
    """

    def __init__(self, targets):
        self.targets = np.asarray(targets, dtype=np.int64).reshape(len(targets), -1, 2)  # (n_envs, n_targets, 2)
        self.stage = np.zeros(len(self.targets), dtype=np.int64)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation).reshape(-1, 2)
        if episode_start is not None:
            self.stage[np.asarray(episode_start, dtype=bool).reshape(-1)] = 0
        target = self.targets[np.arange(len(obs)), self.stage]
        dx, dy = (target - obs).T
        actions = np.select([dx < 0, dx > 0, dy < 0, dy > 0], [LEFT, RIGHT, UP, DOWN], default=NOOP)
        return (actions if np.asarray(observation).ndim == 2 else actions[0]), state

    def observe(self, reward, done=None, state=None):
        paid = np.asarray(reward).reshape(-1) > 0
        self.stage = np.minimum(self.stage + paid, self.targets.shape[1] - 1)
        if done is not None:
            self.stage[np.asarray(done, dtype=bool).reshape(-1)] = 0


def oracle_for(env_id: str, tasks) -> GridOracle:
    """The goal-aware optimal policy of ``env_id`` for a batch of envs on ``tasks``."""
    from ad_gym.envs.tasks import canonical_env_id

    env_id = canonical_env_id(env_id)
    if env_id in ("DarkRoom-v0", "DarkRoomHard-v0"):
        return GridOracle([[t["goal"]] for t in tasks])
    if env_id == "DarkKeyToDoor-v0":
        return GridOracle([[t["key"], t["door"]] for t in tasks])
    raise ValueError(f"no oracle for {env_id}")
