"""Dark Key-to-Door: find an invisible key, then an invisible door, seeing only your own position."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ad_gym.envs.checks import check_int, check_render_mode
from ad_gym.envs.horizon import HorizonInSpec
from ad_gym.envs.dark_room import ACTION_DELTAS, ACTION_NAMES, GridOracle, render_grid_rgb, render_grid_text, validate_cell
from ad_gym.envs.tasks import TaskFamily, add_family


class DarkKeyToDoorEnv(HorizonInSpec, gym.Env):
    """
    ## Description

    Dark Key-to-Door from Laskin et al., "In-context Reinforcement Learning with Algorithm
    Distillation" (2022). In a dark 9x9 room the agent must first step on an invisible key cell,
    then on an invisible door cell. Its only observation is its own position, and every episode
    starts on a random cell, so an agent that has found both has to remember where they are and
    walk there from anywhere. The task is the (key, door) pair: 81 x 81 = 6561 tasks. Two sparse
    rewards in sequence make credit assignment harder than in Dark Room.

    ## Action Space

    `Discrete(5)`: 0 left (x - 1), 1 right (x + 1), 2 up (y - 1), 3 down (y + 1), 4 no-op, as in
    `DarkRoomEnv`. A move into the outer wall leaves the agent where it is.

    ## Observation Space

    `MultiDiscrete([size, size])`: the agent's cell ``(x, y)``; whether the key is held is not
    observed (see `KeyFlagObservation` for the wrapper that adds it for source learners).

    ## Rewards

    +1 on the first step that ends on the key cell (the key is picked up), then +1 on the first
    later step that ends on the door cell (the door opens). Every other step pays 0, so the best
    return is 2, which every task allows from every start within the 50 steps. Starting on the
    key does not pick it up: a step has to end there (the no-op does). With the key and the door
    on one cell, the door opens on the step after the key is picked up there.

    ## Starting State

    A cell drawn uniformly from ``self.np_random`` at every reset; the key is not held.

    ## Episode End

    Terminated when the door opens; truncated after ``max_steps`` steps (50). With
    ``terminate_on_door=False`` every episode runs all ``max_steps`` steps instead: after the door
    opens the agent walks on and earns nothing more. That is the reading of the paper in which
    its 200-step context is exactly 4 episodes; it also puts the door cell into the observations
    (the agent stands on it), where a terminating episode ends before the door is ever observed.

    ## Tasks

    ``gym.make(id, key=(x, y), door=(x, y))`` or ``reset(options={"key": ..., "door": ...})``
    fixes the task; otherwise both cells are drawn from ``self.np_random`` on the first reset and
    on every seeded reset. Plain ``reset()`` calls keep the task, so a vectorised env stays on it.
    ``ad_gym.tasks("DarkKeyToDoor-v0", split)`` lists the fixed train / test split.

    ## Arguments

    * ``key``, ``door``: the cells ``(x, y)``, or ``None`` to draw them at reset (both or neither).
    * ``render_mode``: ``"ansi"`` (a text grid) or ``"rgb_array"``.
    * ``size``: side of the square grid (9).
    * ``max_steps``: episode length (50).
    * ``terminate_on_door``: end the episode when the door opens (default) or run on to ``max_steps``.

    ## Version History

    * v1: ``terminate_on_door=False`` (the paper's fixed 50-step episodes); same tasks and split.
    * v0: initial version: the episode ends when the door opens.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        key: tuple[int, int] | None = None,
        door: tuple[int, int] | None = None,
        render_mode: str | None = None,
        size: int = 9,
        max_steps: int = 50,
        terminate_on_door: bool = True,
    ):
        check_int("size", size, 2)
        check_int("max_steps", max_steps, 1)
        check_render_mode(render_mode, self.metadata)
        if (key is None) != (door is None):
            raise ValueError(f"give both key and door, or neither to draw them at reset; got key={key!r}, door={door!r}")
        self.size = int(size)
        self.max_steps = int(max_steps)
        if not isinstance(terminate_on_door, (bool, np.bool_)):
            raise TypeError(f"terminate_on_door must be a bool, got {terminate_on_door!r}")
        self.terminate_on_door = bool(terminate_on_door)
        self.render_mode = render_mode
        self.observation_space = spaces.MultiDiscrete([self.size, self.size])
        self.action_space = spaces.Discrete(len(ACTION_NAMES))

        self._task_fixed = key is not None
        self.key = validate_cell(key, self.size, "key") if key is not None else None
        self.door = validate_cell(door, self.size, "door") if door is not None else None
        self.start = self.agent = (0, 0)
        self.steps = 0
        self.has_key = False
        self.door_open = False

    @property
    def task(self) -> dict[str, Any]:
        """The current task as the keyword arguments that fix it: ``{"key": (x, y), "door": (x, y)}``."""
        return {"key": self.key, "door": self.door}

    def optimal_return(self) -> float:
        """The best return of the current episode from its start cell (2 in the 9x9 room in 50 steps)."""
        if self.key is None:
            raise RuntimeError("the task is not set yet: call reset() first")
        distance = lambda a, b: abs(a[0] - b[0]) + abs(a[1] - b[1])  # noqa: E731
        # A step has to end on each cell: one no-op when the agent is already there.
        to_key = max(distance(self.start, self.key), 1)
        to_door = max(distance(self.key, self.door), 1)
        return float((to_key <= self.max_steps) + (to_key + to_door <= self.max_steps))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"key", "door"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; {type(self).__name__} accepts 'key' and 'door'")
        if ("key" in options) != ("door" in options):
            raise ValueError("reset options must give both 'key' and 'door', or neither")
        if options.get("key") is not None or options.get("door") is not None:
            self.key = validate_cell(options["key"], self.size, "key")
            self.door = validate_cell(options["door"], self.size, "door")
            self._task_fixed = True
        elif self.key is None or (seed is not None and not self._task_fixed):
            cells = self.np_random.integers(self.size, size=4)
            self.key, self.door = (int(cells[0]), int(cells[1])), (int(cells[2]), int(cells[3]))

        self.start = tuple(int(v) for v in self.np_random.integers(self.size, size=2))
        self.agent = self.start
        self.steps = 0
        self.has_key = False
        self.door_open = False
        return self._observation(), {}

    def step(self, action) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.key is None:
            raise RuntimeError("call reset() before step()")
        if self.door_open and self.terminate_on_door:
            raise RuntimeError("the episode is over (the door is open): call reset()")
        plain = type(action) in (int, np.int64) and 0 <= action < self.action_space.n  # the common case, fast
        if not plain and (isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action)):
            raise ValueError(f"action must be an integer in [0, {self.action_space.n - 1}], got {action!r}")
        dx, dy = ACTION_DELTAS[int(action)]
        x = min(max(self.agent[0] + int(dx), 0), self.size - 1)
        y = min(max(self.agent[1] + int(dy), 0), self.size - 1)
        self.agent = (x, y)
        self.steps += 1

        reward = 0.0
        if self.has_key and not self.door_open and self.agent == self.door:
            self.door_open, reward = True, 1.0
        elif not self.has_key and self.agent == self.key:
            self.has_key, reward = True, 1.0
        terminated = self.door_open and self.terminate_on_door
        truncated = self.steps >= self.max_steps and not terminated
        return self._observation(), reward, terminated, truncated, {}

    def _observation(self) -> np.ndarray:
        return np.array(self.agent, dtype=np.int64)

    def render(self):
        marks = {"A": self.agent}
        if self.key is not None:
            marks = {"K": None if self.has_key else self.key, "D": self.door, **marks}
        if self.render_mode == "ansi":
            return render_grid_text(self.size, marks)
        if self.render_mode == "rgb_array":
            return render_grid_rgb(self.size, marks)
        return None


class KeyFlagObservation(gym.ObservationWrapper):
    """Adds whether the key is held to the observation: ``(x, y, has_key)``.

    Dark Key-to-Door is not Markov in ``(x, y)`` alone, so a single-task source learner cannot
    solve it without this flag (the paper gave it to its source agents). The histories AD learns
    from hold the plain observation: `history_observation` strips the flag again.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        size = env.unwrapped.size
        self.observation_space = spaces.MultiDiscrete([size, size, 2])

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.array([*observation, int(self.env.unwrapped.has_key)], dtype=np.int64)

    @staticmethod
    def history_observation(observations: np.ndarray) -> np.ndarray:
        """Flagged observations ``(..., 3)`` back to the env's own ``(..., 2)``."""
        return observations[..., :2]


# -- the family: one task per (key, door) pair -----------------------------------------------


def key_door_pairs(size: int) -> tuple[dict[str, Any], ...]:
    # A fixed shuffle (NumPy's legacy RandomState, whose streams never change), so the first N
    # tasks of a split are spread over the room rather than all sharing one key cell.
    cells = [(x, y) for x in range(size) for y in range(size)]
    pairs = [{"key": k, "door": d} for k in cells for d in cells]
    order = np.random.RandomState(0).permutation(len(pairs))
    return tuple(pairs[i] for i in order)


def key_door_held_out(task: dict[str, Any]) -> bool:
    # 665 of the 6561 (key, door) pairs; every cell is still a key and a door in training.
    (kx, ky), (dx, dy) = task["key"], task["door"]
    return (kx + 2 * ky + 3 * dx + 4 * dy) % 10 == 0


_KEY_TO_DOOR = TaskFamily(
    env_id="DarkKeyToDoor-v0",
    entry_point="ad_gym.envs.dark_key_to_door:DarkKeyToDoorEnv",
    all_tasks=key_door_pairs(9),
    is_test=key_door_held_out,
    split_rule="test = (key, door) pairs with (kx + 2*ky + 3*dx + 4*dy) % 10 == 0; train = the rest; "
    "tasks listed in a fixed shuffled order (numpy RandomState(0))",
    source_wrapper=KeyFlagObservation,
    oracle=lambda tasks: GridOracle([[t["key"], t["door"]] for t in tasks]),
)
add_family(_KEY_TO_DOOR)
# v1: the same tasks and split, but every episode runs all 50 steps (the door does not end it), as
# in the paper, whose 200-step context is 4 Key-to-Door episodes. v0 stays for earlier results.
add_family(replace(_KEY_TO_DOOR, env_id="DarkKeyToDoor-v1", kwargs={"terminate_on_door": False}))
