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


class DarkRoomOracle:
    """Knows each env's goal and walks straight to it (x first, then y), then stays: the best return."""

    def __init__(self, goals):
        self.goals = np.asarray(goals, dtype=np.int64).reshape(-1, 2)  # (n_envs, 2)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation).reshape(-1, 2)
        dx, dy = (self.goals - obs).T
        actions = np.select([dx < 0, dx > 0, dy < 0, dy > 0], [LEFT, RIGHT, UP, DOWN], default=NOOP)
        return (actions if np.asarray(observation).ndim == 2 else actions[0]), state

    def observe(self, reward, done=None, state=None):
        pass
