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
  head for the true target (and find its reward) like a learner that has found it. With
  ``resample=True`` the decoys behave like posterior sampling: a hypothesis is drawn among the
  decoys whose target the stream has not visited yet, a decoy that reaches its target unpaid draws
  a new one (the true one with ``true_prob``) instead of waiting there, and one paid on the way
  follows the true task's oracle for the rest of the episode. (Following it in later episodes
  too, as a learner that remembers would, made DPT explore worse: methods_notes.md.) This needs
  an oracle that can say when it has arrived (``arrived(obs)``: the grid families' oracle).

The schedule, per stream, at its episode ``e`` (0-based)::

    eps(e) = eps_end + (eps_start - eps_end) * max(0, 1 - e / decay_episodes) ** power

``power=1`` is the paper's linear decay; a later scaling study reports that a linear decay makes
abrupt jumps in the histories and uses a power curve instead (``power`` > 1 decays faster at first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


_ADDED_LATER = {"resample": False}  # setting: its default


@dataclass(frozen=True)
class NoiseSchedule:
    eps_start: float = 1.0
    eps_end: float = 0.0
    decay_episodes: int = 20
    power: float = 1.0
    decoy: bool = False  # each episode heads for a random task's target instead of its own...
    true_prob: float = 0.0  # ...except with this probability (decoy schedules only)
    resample: bool = False  # decoys: a new hypothesis on reaching the target unpaid, the true one once paid

    def __post_init__(self):
        for name in ("eps_start", "eps_end", "true_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if isinstance(self.decay_episodes, bool) or not isinstance(self.decay_episodes, int) or self.decay_episodes < 1:
            raise ValueError(f"decay_episodes must be a positive integer, got {self.decay_episodes!r}")
        if isinstance(self.power, bool) or not isinstance(self.power, (int, float)) or self.power <= 0:
            raise ValueError(f"power must be a positive number, got {self.power!r}")
        for name in ("decoy", "resample"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.resample and not self.decoy:
            raise ValueError("resample applies to decoy schedules only: set decoy=True too")

    def eps(self, episode: np.ndarray) -> np.ndarray:
        left = np.clip(1.0 - np.asarray(episode, dtype=np.float64) / self.decay_episodes, 0.0, 1.0)
        return self.eps_end + (self.eps_start - self.eps_end) * left**self.power

    def to_dict(self) -> dict[str, Any]:
        # Settings added after the first release are left out at their defaults, so folders and
        # checkpoints made before them still match the same settings.
        return {k: v for k, v in asdict(self).items() if not (k in _ADDED_LATER and v == _ADDED_LATER[k])}


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
        self.is_true = np.zeros(n_streams, dtype=bool)  # decoy schedules: the stream follows its own task
        self.visited = np.zeros((n_streams, len(self.decoys)), dtype=bool)  # resample: decoy targets seen
        if schedule.decoy:
            self.oracles = []
            for i in range(n_streams):
                oracle, self.is_true[i] = self._oracle(stream=i)
                self.oracles.append(oracle)
        else:
            self.oracles = [make_oracle([task] * n_streams)]
        if schedule.resample:
            if not hasattr(self.oracles[0], "arrived"):
                raise ValueError(
                    f"resample needs an oracle that knows when it has arrived; {type(self.oracles[0]).__name__} does not"
                )
            self.all_decoys = make_oracle(self.decoys)  # one env per decoy: which decoys' targets a cell is
            self.targets_at: dict[bytes, np.ndarray] = {}
            self.seen: list[set[bytes]] = [set() for _ in range(n_streams)]

    def _oracle(self, true: bool | None = None, stream: int = 0):
        """A fresh oracle for ``stream`` and whether it heads for the stream's own task."""
        if true is None:
            true = self.rng.random() < self.schedule.true_prob
        if true:
            return self.make_oracle([self.task]), True
        fresh = np.flatnonzero(~self.visited[stream])  # all of them without resample
        pick = self.rng.choice(fresh) if len(fresh) else self.rng.integers(len(self.decoys))
        return self.make_oracle([self.decoys[pick]]), False

    def _parts(self):
        """(oracle, rows of the batch it acts for) pairs."""
        if not self.schedule.decoy:
            return [(self.oracles[0], slice(None))]
        return [(oracle, slice(i, i + 1)) for i, oracle in enumerate(self.oracles)]

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        actions = np.empty(len(self.episode), dtype=np.int64)
        if self.schedule.resample:  # posterior sampling: a wrong hypothesis is dropped, a new one is unvisited
            self._visit(obs)
            for i in range(len(obs)):
                if not self.is_true[i] and self.oracles[i].arrived(obs[i : i + 1])[0]:
                    self.oracles[i], self.is_true[i] = self._oracle(stream=i)
        for oracle, rows in self._parts():
            action, _ = oracle.predict(obs[rows], episode_start=self.episode_start[rows])
            actions[rows] = np.asarray(action).reshape(-1)
        noisy = self.rng.random(len(actions)) < self.schedule.eps(self.episode)
        actions[noisy] = self.rng.integers(self.n_actions, size=int(noisy.sum()))
        self.episode_start[:] = False
        return actions, state

    def _visit(self, obs: np.ndarray) -> None:
        for i in range(len(obs)):
            key = obs[i].tobytes()
            if key not in self.seen[i]:
                self.seen[i].add(key)
                if key not in self.targets_at:  # which decoys' targets this observation is: once each
                    self.targets_at[key] = self.all_decoys.arrived(np.repeat(obs[i : i + 1], len(self.decoys), axis=0))
                self.visited[i] |= self.targets_at[key]

    def observe(self, reward, done=None, state=None, next_obs=None):
        rewards = np.asarray(reward).reshape(-1)
        if self.schedule.resample and next_obs is not None:  # an episode's last cell is never predicted from
            self._visit(np.asarray(next_obs))
        ended = np.zeros(len(self.episode), dtype=bool) if done is None else np.asarray(done, dtype=bool).reshape(-1)
        if self.schedule.resample:  # paid on the way: the true target is found, head for it this episode
            for i in np.flatnonzero(~self.is_true & (rewards > 0)):
                self.oracles[i], self.is_true[i] = self._oracle(true=True)
        for oracle, rows in self._parts():
            oracle.observe(rewards[rows], ended[rows])
        for i in np.flatnonzero(ended):
            self.episode[i] += 1
            self.episode_start[i] = True
            if self.schedule.decoy:
                self.oracles[i], self.is_true[i] = self._oracle(stream=i)
