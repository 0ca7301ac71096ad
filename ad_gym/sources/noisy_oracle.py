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
  has found that target: with targets left (Key-to-Door's door, once the key is found) it draws
  the next one's hypothesis the same way (a cell visited while looking for a target rules it
  out for that target only: a door pays nothing without the key); with none left it follows the
  true task's oracle for the rest of the episode. This needs an oracle that can say when it
  has arrived (``arrived(obs)``: the grid families' oracle).
- **An explorer's learning histories** (``remember=True`` on top of ``resample``): a stream
  heads straight for every target it found in an earlier episode and searches, as above, only
  for the ones it has not found yet: posterior sampling with a memory, whose histories AD can
  distil like a learner's (`ad_gym.methods.ad_ps`). ``wander=True`` makes it move at random once
  every target has paid in an episode, instead of waiting on the last one: where that target
  pays once (Key-to-Door's door), waiting on a cell then never shows in the histories, which AD
  otherwise learned to do on wrong cells. (As DPT's contexts, remembering made DPT explore
  worse: methods_notes.md.)

The schedule, per stream, at its episode ``e`` (0-based)::

    eps(e) = eps_end + (eps_start - eps_end) * max(0, 1 - e / decay_episodes) ** power

``power=1`` is the paper's linear decay; a later scaling study reports that a linear decay makes
abrupt jumps in the histories and uses a power curve instead (``power`` > 1 decays faster at first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np


_ADDED_LATER = {"resample": False, "remember": False, "wander": False}  # setting: its default
_REDRAWS = 8  # resample: draws of a hypothesis before a stream may wait on the cell it stands on


@dataclass(frozen=True)
class NoiseSchedule:
    eps_start: float = 1.0
    eps_end: float = 0.0
    decay_episodes: int = 20
    power: float = 1.0
    decoy: bool = False  # each episode heads for a random task's target instead of its own...
    true_prob: float = 0.0  # ...except with this probability (decoy schedules only)
    resample: bool = False  # decoys: a new hypothesis on reaching the target unpaid, the true one once paid
    remember: bool = False  # resample: a target found in an earlier episode is headed for in every later one
    wander: bool = False  # once every target has paid this episode, random moves instead of waiting on the last

    def __post_init__(self):
        for name in ("eps_start", "eps_end", "true_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if isinstance(self.decay_episodes, bool) or not isinstance(self.decay_episodes, int) or self.decay_episodes < 1:
            raise ValueError(f"decay_episodes must be a positive integer, got {self.decay_episodes!r}")
        if isinstance(self.power, bool) or not isinstance(self.power, (int, float)) or self.power <= 0:
            raise ValueError(f"power must be a positive number, got {self.power!r}")
        for name in ("decoy", "resample", "remember", "wander"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.resample and not self.decoy:
            raise ValueError("resample applies to decoy schedules only: set decoy=True too")
        for name in ("remember", "wander"):
            if getattr(self, name) and not self.resample:
                raise ValueError(f"{name} applies to resampling schedules only: set decoy=True and resample=True too")

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
        self.paid = np.zeros(n_streams, dtype=np.int64)  # rewards so far this episode: the targets found
        self.known = np.zeros(n_streams, dtype=np.int64)  # targets found in any episode so far (remember)
        own = make_oracle([task])
        if schedule.resample and not hasattr(own, "arrived"):
            raise ValueError(f"resample needs an oracle that knows when it has arrived; {type(own).__name__} does not")
        # Resampling draws a hypothesis per target (Key-to-Door: the key's, then, once the key is
        # found, the door's), each among the decoys whose target of that rank the stream has not visited.
        self.n_targets = getattr(own, "n_targets", 1) if schedule.resample else 1
        self.visited = np.zeros((self.n_targets, n_streams, len(self.decoys)), dtype=bool)
        # Without decoys every stream follows its own task's oracle: one oracle acts for the batch.
        # Decoys change each stream's target at its own episode ends: one oracle per stream.
        self.is_true = np.zeros(n_streams, dtype=bool)  # decoy schedules: the stream follows its own task
        if schedule.decoy:
            self.oracles = []
            for i in range(n_streams):
                oracle, self.is_true[i] = self._oracle(stream=i)
                self.oracles.append(oracle)
        else:
            self.oracles = [make_oracle([task] * n_streams)]
        if schedule.resample:
            # Per target rank, one env per decoy: which decoys' targets of that rank a cell is.
            self.all_decoys = [self._found(make_oracle(self.decoys), k, len(self.decoys)) for k in range(self.n_targets)]
            self.targets_at: dict[tuple[int, bytes], np.ndarray] = {}
            self.seen: list[set[tuple[int, bytes]]] = [set() for _ in range(n_streams)]

    @staticmethod
    def _found(oracle, targets: int, n_envs: int = 1):
        """``oracle`` (acting for ``n_envs`` envs) moved on past its first ``targets`` targets: the
        oracles move on to their next target when paid."""
        for _ in range(targets):
            oracle.observe(np.ones(n_envs))
        return oracle

    def _oracle(self, true: bool | None = None, stream: int = 0):
        """A fresh oracle for ``stream``, past the targets it has found this episode, and whether it
        heads for the stream's own task."""
        if true is None:
            # A stream that remembers heads for the targets it has found before; past them it explores.
            remembered = self.schedule.remember and self.paid[stream] < self.known[stream]
            true = remembered or self.rng.random() < self.schedule.true_prob
        if true:
            return self._found(self.make_oracle([self.task]), int(self.paid[stream])), True
        rank = min(int(self.paid[stream]), self.n_targets - 1)
        fresh = np.flatnonzero(~self.visited[rank, stream])  # all of them without resample
        pick = self.rng.choice(fresh) if len(fresh) else self.rng.integers(len(self.decoys))
        return self._found(self.make_oracle([self.decoys[pick]]), int(self.paid[stream])), False

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
                # Once every decoy's target is visited a hypothesis may be drawn where the stream
                # stands: draw again (a few times) rather than wait there a step.
                for _ in range(_REDRAWS):
                    if self.is_true[i] or not self.oracles[i].arrived(obs[i : i + 1])[0]:
                        break
                    self.oracles[i], self.is_true[i] = self._oracle(stream=i)
        for oracle, rows in self._parts():
            action, _ = oracle.predict(obs[rows], episode_start=self.episode_start[rows])
            actions[rows] = np.asarray(action).reshape(-1)
        noisy = self.rng.random(len(actions)) < self.schedule.eps(self.episode)
        if self.schedule.wander:
            noisy |= self.paid >= self.n_targets
        actions[noisy] = self.rng.integers(self.n_actions, size=int(noisy.sum()))
        self.episode_start[:] = False
        return actions, state

    def _visit(self, obs: np.ndarray) -> None:
        # A cell visited while looking for the target of rank k rules it out for that rank only
        # (a door pays nothing to a stream without the key).
        for i in range(len(obs)):
            rank = min(int(self.paid[i]), self.n_targets - 1)
            key = (rank, obs[i].tobytes())
            if key not in self.seen[i]:
                self.seen[i].add(key)
                if key not in self.targets_at:  # which decoys' targets this observation is: once each
                    self.targets_at[key] = self.all_decoys[rank].arrived(np.repeat(obs[i : i + 1], len(self.decoys), axis=0))
                self.visited[rank, i] |= self.targets_at[key]

    def observe(self, reward, done=None, state=None, next_obs=None):
        rewards = np.asarray(reward).reshape(-1)
        if self.schedule.resample and next_obs is not None:  # an episode's last cell is never predicted from
            self._visit(np.asarray(next_obs))
        ended = np.zeros(len(self.episode), dtype=bool) if done is None else np.asarray(done, dtype=bool).reshape(-1)
        for oracle, rows in self._parts():
            oracle.observe(rewards[rows], ended[rows])
        self.paid += rewards > 0
        self.known = np.maximum(self.known, self.paid)
        if self.schedule.resample:
            # Paid on the way: that target is found. With every target found, head for the true
            # task's for the rest of the episode; else draw a hypothesis for the next one (a stream
            # that remembers heads for it if it found it before).
            searching = ~self.is_true | self.schedule.remember
            for i in np.flatnonzero(searching & (rewards > 0) & ~ended & (self.paid <= self.n_targets)):
                self.oracles[i], self.is_true[i] = self._oracle(True if self.paid[i] >= self.n_targets else None, stream=i)
        for i in np.flatnonzero(ended):
            self.episode[i] += 1
            self.episode_start[i] = True
            self.paid[i] = 0
            if self.schedule.decoy:
                self.oracles[i], self.is_true[i] = self._oracle(stream=i)
