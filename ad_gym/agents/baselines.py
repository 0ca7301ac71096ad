"""Reference agents with the same ``predict`` / ``observe`` interface as `ADAgent`: random play and
UCB1. Each family's goal-aware oracle lives next to its env (`ad_gym.envs.tasks.oracle_for`)."""

from __future__ import annotations

import numpy as np



class RandomAgent:
    """Uniformly random actions. A batch is an observation with one more dimension than
    ``observation_ndim`` (1 for the grid and bandit families, 3 for pixels)."""

    def __init__(self, action_space, seed: int | None = None, observation_ndim: int = 1):
        self.n_actions = int(action_space.n)
        self.rng = np.random.default_rng(seed)
        self.observation_ndim = observation_ndim

    @classmethod
    def for_env(cls, env_id: str, seed: int | None = None) -> "RandomAgent":
        import gymnasium as gym

        env = gym.make(env_id)
        agent = cls(env.action_space, seed=seed, observation_ndim=len(env.observation_space.shape))
        env.close()
        return agent

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        n = obs.shape[0] if obs.ndim == self.observation_ndim + 1 else None
        actions = self.rng.integers(self.n_actions, size=n or 1)
        return (actions if n else actions[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        pass

    def prompt(self, observations, actions, rewards, dones, state=None, next_observations=None):
        """Random play learns nothing from a prompt."""
        return state


class UCBAgent:
    """UCB1 on a multi-armed bandit, one independent learner per env of the batch.

    Pulls every arm once (lowest index first), then the arm maximising
    ``mean_reward + c * sqrt(2 ln t / pulls)``. Its statistics persist across episodes (the task
    stays the same); ``reset()`` or a new ``state=None`` batch size starts over. It is the source
    algorithm of the Adversarial Bandit and the reference of its normalised score.
    """

    def __init__(self, action_space, c: float = 1.0):
        if not isinstance(c, (int, float)) or isinstance(c, bool) or c < 0:
            raise ValueError(f"c must be a non-negative number, got {c!r}")
        self.n_arms, self.c = int(action_space.n), float(c)
        self.pulls = self.totals = None
        self._last = None

    def reset(self) -> None:
        self.pulls = self.totals = None

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        n = obs.shape[0] if obs.ndim == 2 else 1
        if self.pulls is None or len(self.pulls) != n:
            self.pulls, self.totals = np.zeros((n, self.n_arms)), np.zeros((n, self.n_arms))
        t = self.pulls.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = self.totals / self.pulls + self.c * np.sqrt(2 * np.log(np.maximum(t, 1)) / self.pulls)
        scores[self.pulls == 0] = np.inf  # untried arms first
        # Ties (several untried arms, equal scores) go to the lowest index, as UCB1 is usually written.
        actions = scores.argmax(axis=1)
        self._last = actions
        return (actions if obs.ndim == 2 else actions[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        rows = np.arange(len(self._last))
        self.pulls[rows, self._last] += 1
        self.totals[rows, self._last] += np.asarray(reward, dtype=np.float64).reshape(-1)

    def prompt(self, observations, actions, rewards, dones, state=None, next_observations=None):
        """Count given pulls as its own (one env: ``actions`` and ``rewards`` ``(T,)``; a batch:
        ``(n_envs, T)``), as `ADAgent.prompt` does; a new batch size starts over."""
        pulls, gains = np.asarray(actions), np.asarray(rewards, dtype=np.float64)
        pulls, gains = (pulls[None], gains[None]) if pulls.ndim == 1 else (pulls, gains)
        if pulls.ndim != 2 or gains.shape != pulls.shape or pulls.dtype.kind not in "iu":
            raise ValueError(f"actions (integers) and rewards must have the same shape, (T,) or (n_envs, T); got "
                             f"{np.shape(actions)} and {np.shape(rewards)}")
        if ((pulls < 0) | (pulls >= self.n_arms)).any() or not np.isfinite(gains).all():
            raise ValueError(f"actions must be arms in [0, {self.n_arms}) and rewards finite")
        if self.pulls is None or len(self.pulls) != len(pulls):
            self.pulls, self.totals = np.zeros((len(pulls), self.n_arms)), np.zeros((len(pulls), self.n_arms))
        for row in range(len(pulls)):
            np.add.at(self.pulls[row], pulls[row], 1)
            np.add.at(self.totals[row], pulls[row], gains[row])
        return state
