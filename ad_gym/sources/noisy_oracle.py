"""A noisy oracle: the family's goal-aware optimal policy with random actions mixed in.

Two uses, both recorded in the ordinary history format by the agent runner of `ad_gym.sources.sb3`:

- **AD-ε** (Zisman et al. 2023): histories with no RL in them. Each stream follows the oracle of
  its own task, taking a uniformly random action instead with probability ε, and ε decays over the
  stream's episodes, so the history *looks like* a learner improving: random at first, optimal at
  the end. Collecting them costs seconds, against minutes for an SB3 learner.
- **Exploration contexts** for DPT (``decoy=True``): each episode follows the oracle of a task
  drawn at random from the family instead of its own, so the behaviour is goal-agnostic (its
  actions say nothing about the true task; only the rewards it stumbles on do), much like an
  in-context learner trying out one hypothesis per episode; ``true_prob`` mixes in episodes that
  head for the true target (and find its reward) like a learner that has found it.

The schedule, per stream, at its episode ``e`` (0-based)::

    eps(e) = eps_end + (eps_start - eps_end) * max(0, 1 - e / decay_episodes) ** power

``power=1`` is the paper's linear decay; a later scaling study reports that a linear decay makes
abrupt jumps in the histories and uses a power curve instead (``power`` > 1 decays faster at first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class NoiseSchedule:
    eps_start: float = 1.0
    eps_end: float = 0.0
    decay_episodes: int = 20
    power: float = 1.0
    decoy: bool = False  # each episode heads for a random task's target instead of its own...
    true_prob: float = 0.0  # ...except with this probability (decoy schedules only)

    def __post_init__(self):
        for name in ("eps_start", "eps_end", "true_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if isinstance(self.decay_episodes, bool) or not isinstance(self.decay_episodes, int) or self.decay_episodes < 1:
            raise ValueError(f"decay_episodes must be a positive integer, got {self.decay_episodes!r}")
        if isinstance(self.power, bool) or not isinstance(self.power, (int, float)) or self.power <= 0:
            raise ValueError(f"power must be a positive number, got {self.power!r}")
        if not isinstance(self.decoy, bool):
            raise TypeError(f"decoy must be a bool, got {self.decoy!r}")

    def eps(self, episode: np.ndarray) -> np.ndarray:
        left = np.clip(1.0 - np.asarray(episode, dtype=np.float64) / self.decay_episodes, 0.0, 1.0)
        return self.eps_end + (self.eps_start - self.eps_end) * left**self.power

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoisyOracle:
    """Acts for a batch of streams of one task with the predict / observe interface of the oracles.

    ``make_oracle(tasks)`` builds the family's oracle for a list of tasks; ``decoys`` are the tasks
    a ``decoy`` schedule draws its targets from.
    """

    def __init__(
        self,
        make_oracle: Callable[[list[dict[str, Any]]], Any],
        task: dict[str, Any],
        n_streams: int,
        n_actions: int,
        schedule: NoiseSchedule,
        seed: int,
        decoys: list[dict[str, Any]] | None = None,
    ):
        self.make_oracle, self.task, self.n_actions, self.schedule = make_oracle, task, n_actions, schedule
        self.decoys = decoys or [task]
        self.rng = np.random.default_rng(seed)
        self.episode = np.zeros(n_streams, dtype=np.int64)
        self.episode_start = np.ones(n_streams, dtype=bool)
        # Without decoys every stream follows its own task's oracle: one oracle acts for the batch.
        # Decoys change each stream's target at its own episode ends: one oracle per stream.
        self.oracles = [self._oracle() for _ in range(n_streams)] if schedule.decoy else [make_oracle([task] * n_streams)]

    def _oracle(self):
        decoy = self.rng.random() >= self.schedule.true_prob
        return self.make_oracle([self.decoys[self.rng.integers(len(self.decoys))] if decoy else self.task])

    def _parts(self):
        """(oracle, rows of the batch it acts for) pairs."""
        if not self.schedule.decoy:
            return [(self.oracles[0], slice(None))]
        return [(oracle, slice(i, i + 1)) for i, oracle in enumerate(self.oracles)]

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        actions = np.empty(len(self.episode), dtype=np.int64)
        for oracle, rows in self._parts():
            action, _ = oracle.predict(obs[rows], episode_start=self.episode_start[rows])
            actions[rows] = np.asarray(action).reshape(-1)
        noisy = self.rng.random(len(actions)) < self.schedule.eps(self.episode)
        actions[noisy] = self.rng.integers(self.n_actions, size=int(noisy.sum()))
        self.episode_start[:] = False
        return actions, state

    def observe(self, reward, done=None, state=None, next_obs=None):
        rewards = np.asarray(reward).reshape(-1)
        ended = np.zeros(len(self.episode), dtype=bool) if done is None else np.asarray(done, dtype=bool).reshape(-1)
        for oracle, rows in self._parts():
            oracle.observe(rewards[rows], ended[rows])
        for i in np.flatnonzero(ended):
            self.episode[i] += 1
            self.episode_start[i] = True
            if self.schedule.decoy:
                self.oracles[i] = self._oracle()
