"""A Stable-Baselines3 callback that records exactly what a learner did, stream by stream."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecTransposeImage

from ad_gym.data.histories import IndexedObservations


class HistoryBuffer:
    """The steps of a batch of streams, appended one vectorised step at a time.

    ``observations`` are what each stream's action was chosen from; ``next_observations`` what it
    led to (where an episode ended, the view it ended on, before the reset); ``dones`` mark the
    last step of an episode. Shared by the SB3 callback below and by non-SB3 sources such as UCB,
    so every source's history has the same layout.
    """

    def __init__(self, observation_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        self.observation_fn = observation_fn or (lambda obs: obs)
        self._steps: dict[str, list[np.ndarray]] = {
            "observations": [], "next_observations": [], "actions": [], "rewards": [], "dones": []
        }
        # Pixel observations are kept once each (row of this table) and recorded as row numbers.
        self._rows: dict[bytes, int] = {}
        self._table: list[np.ndarray] = []

    def add(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        dones: np.ndarray,
        next_observations: np.ndarray,
    ) -> None:
        self._steps["observations"].append(self._stored(observations))
        self._steps["next_observations"].append(self._stored(next_observations))
        self._steps["actions"].append(np.array(actions, copy=True))  # (n_streams, *action_shape)
        self._steps["rewards"].append(np.array(rewards, dtype=np.float32, copy=True))
        self._steps["dones"].append(np.array(dones, dtype=bool, copy=True))

    def _stored(self, observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(self.observation_fn(observations))
        if observations.ndim >= 3:  # (n_streams, H, W, ...): images
            return np.array([self._row(image) for image in observations], dtype=np.int64)
        return np.array(observations, copy=True)

    def _row(self, image: np.ndarray) -> int:
        key = image.tobytes()
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._table)
            self._table.append(image.copy())
        return row

    @property
    def n_steps(self) -> int:
        """Steps recorded per stream."""
        return len(self._steps["rewards"])

    def arrays(self) -> dict[str, Any]:
        """The recording as ``(streams, steps, ...)`` arrays, the layout of `ad_gym.data.History`."""
        if self.n_steps == 0:
            raise RuntimeError("nothing was recorded: the learner took no step")
        arrays = {name: np.stack(steps, axis=1) for name, steps in self._steps.items()}
        if self._table:
            table = np.stack(self._table)
            for name in ("observations", "next_observations"):
                arrays[name] = IndexedObservations(table, arrays[name])
        return arrays


class HistoryRecorder(BaseCallback):
    """Record the observation, action, reward and episode end of every step of every stream.

    Works with any SB3 algorithm whose rollout loop calls the callback after each vectorised
    ``env.step`` (A2C, PPO, DQN, ...). Rewards are copied at once: on-policy algorithms add the
    bootstrapped value of truncated episodes to the ``rewards`` array in place right after the
    callback returns, and the history must hold what the env paid.

    ``observation_fn`` maps the observations the learner sees to the ones stored (for example to
    drop a flag that only the source agent is given); by default they are stored as seen.
    """

    def __init__(self, observation_fn: Callable[[np.ndarray], np.ndarray] | None = None):
        super().__init__(verbose=0)
        self.buffer = HistoryBuffer(observation_fn)
        self._last_obs: np.ndarray | None = None

    def _on_training_start(self) -> None:
        # SB3 feeds images channels-first through VecTransposeImage; histories keep the env's layout.
        self._channels_first = isinstance(self.model.get_env(), VecTransposeImage)
        last_obs = self.model._last_obs  # the observations the first actions will be chosen from
        if not isinstance(last_obs, np.ndarray):
            raise TypeError(f"HistoryRecorder records array observations, got {type(last_obs).__name__}")
        self._last_obs = self._env_layout(last_obs)

    def _env_layout(self, observations: np.ndarray) -> np.ndarray:
        if self._channels_first:
            return np.ascontiguousarray(observations.transpose(0, 2, 3, 1))  # (n, C, H, W) -> (n, H, W, C)
        return np.array(observations, copy=True)

    def _on_step(self) -> bool:
        new_obs, actions = self.locals["new_obs"], self.locals["actions"]
        dones = self.locals["dones"]
        actions = np.asarray(actions).reshape(len(dones), *self._action_shape())
        # After an episode ends the VecEnv has already reset that stream, so new_obs holds the
        # first observation of its next episode: exactly what the next action is chosen from. The
        # view the episode ended on is in the step's info.
        next_obs = np.array(new_obs, copy=True)
        for i in np.flatnonzero(dones):
            next_obs[i] = self.locals["infos"][i]["terminal_observation"]
        self.buffer.add(self._last_obs, actions, self.locals["rewards"], dones, self._env_layout(next_obs))
        self._last_obs = self._env_layout(new_obs)
        return True

    def _action_shape(self) -> tuple[int, ...]:
        return tuple(self.model.action_space.shape or ())

    @property
    def n_steps(self) -> int:
        return self.buffer.n_steps

    def arrays(self) -> dict[str, Any]:
        return self.buffer.arrays()
