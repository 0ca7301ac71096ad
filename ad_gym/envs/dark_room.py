"""Dark Room: find an invisible goal in a small grid, seeing nothing but your own position."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ad_gym.envs.checks import check_int, check_render_mode
from ad_gym.envs.horizon import HorizonInSpec
from ad_gym.envs.tasks import TaskFamily, add_family

# Action indices, in the paper's order.
LEFT, RIGHT, UP, DOWN, NOOP = range(5)
ACTION_NAMES = ("left", "right", "up", "down", "noop")
# (dx, dy) per action; y grows downwards, as in image and MiniGrid coordinates.
ACTION_DELTAS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)], dtype=np.int64)

_CELL_PX = 16


def validate_cell(cell: Any, size: int, what: str) -> tuple[int, int]:
    """Return `cell` as an ``(x, y)`` tuple of ints, or raise a clear error if it is not a cell of the grid."""
    try:
        values = np.asarray(cell)
    except Exception as exc:  # pragma: no cover - np.asarray accepts almost anything
        raise TypeError(f"{what} must be a pair of integers (x, y), got {cell!r}") from exc
    is_bool = values.dtype == np.bool_ or any(isinstance(v, (bool, np.bool_)) for v in np.ravel(np.asarray(cell, dtype=object)))
    if values.shape != (2,) or not np.issubdtype(values.dtype, np.integer) or is_bool:
        raise TypeError(f"{what} must be a pair of integers (x, y), got {cell!r}")
    x, y = int(values[0]), int(values[1])
    if not (0 <= x < size and 0 <= y < size):
        raise ValueError(
            f"{what} {(x, y)} is outside the {size}x{size} grid: x and y must be integers in [0, {size - 1}]"
        )
    return x, y


class DarkRoomEnv(HorizonInSpec, gym.Env):
    """
    ## Description

    Dark Room from Laskin et al., "In-context Reinforcement Learning with Algorithm Distillation"
    (2022). The agent walks in a 9x9 grid, starting at the centre, looking for a goal cell it cannot
    see: its only observation is its own position. The task is the goal cell, so the family holds
    81 tasks; an agent that has found the goal once can return to it every episode, which is what
    an in-context learner has to discover from rewards alone.

    ## Action Space

    `Discrete(5)`: 0 left (x - 1), 1 right (x + 1), 2 up (y - 1), 3 down (y + 1), 4 no-op.
    A move into the outer wall leaves the agent where it is.

    ## Observation Space

    `MultiDiscrete([size, size])`: the agent's cell ``(x, y)`` as two integers, in the same order
    as the goal. ``x`` is the column, ``y`` the row, ``(0, 0)`` the top-left corner.

    ## Rewards

    +1 on every step that ends on the goal cell (including staying there with the no-op), 0
    otherwise. The best return is ``max_steps - distance(start, goal)`` (16.5 on average over the
    81 goals of the 9x9 room).

    ## Starting State

    The centre cell, ``(size // 2, size // 2)``: (4, 4) in the 9x9 room.

    ## Episode End

    Episodes never terminate; they are truncated after ``max_steps`` steps (20).

    ## Tasks

    The goal is fixed by ``gym.make(id, goal=(x, y))`` or ``reset(options={"goal": (x, y)})``.
    Otherwise it is drawn uniformly from ``self.np_random`` on the first reset and on every seeded
    reset. Plain ``reset()`` calls keep it, so a vectorised env (which resets without options)
    stays on its task. ``ad_gym.tasks(env_id, split)`` lists the fixed train / test split.

    ## Arguments

    * ``goal``: the goal cell ``(x, y)``, or ``None`` to draw it at reset.
    * ``render_mode``: ``"ansi"`` (a text grid) or ``"rgb_array"``.
    * ``size``: side of the square grid (9).
    * ``max_steps``: episode length (20).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    #: True: reward only the first time the goal is reached in an episode (Dark Room Hard).
    reward_once = False

    def __init__(
        self,
        goal: tuple[int, int] | None = None,
        render_mode: str | None = None,
        size: int = 9,
        max_steps: int = 20,
    ):
        check_int("size", size, 2)
        check_int("max_steps", max_steps, 1)
        check_render_mode(render_mode, self.metadata)
        self.size = int(size)
        self.max_steps = int(max_steps)
        self.render_mode = render_mode
        self.start = (self.size // 2, self.size // 2)
        self.observation_space = spaces.MultiDiscrete([self.size, self.size])
        self.action_space = spaces.Discrete(len(ACTION_NAMES))

        # A goal given here or through reset options is the task, kept until changed explicitly.
        self._goal_fixed = goal is not None
        self.goal: tuple[int, int] | None = validate_cell(goal, self.size, "goal") if goal is not None else None
        self.agent = self.start
        self.steps = 0
        self.goal_reached = False

    @property
    def task(self) -> dict[str, Any]:
        """The current task as the keyword arguments that fix it: ``{"goal": (x, y)}``."""
        return {"goal": self.goal}

    def optimal_return(self) -> float:
        """The best return an agent that knows the goal can get in one episode."""
        if self.goal is None:
            raise RuntimeError("the goal is not set yet: call reset() first")
        distance = abs(self.goal[0] - self.start[0]) + abs(self.goal[1] - self.start[1])
        if distance > self.max_steps:
            return 0.0
        if self.reward_once:
            return 1.0
        # Paid on arrival and on every later step; a goal on the start pays from the first step.
        return float(self.max_steps - max(distance, 1) + 1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"goal"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; {type(self).__name__} accepts only 'goal'")
        if options.get("goal") is not None:
            self.goal = validate_cell(options["goal"], self.size, "goal")
            self._goal_fixed = True
        elif self.goal is None or (seed is not None and not self._goal_fixed):
            self.goal = tuple(int(v) for v in self.np_random.integers(self.size, size=2))

        self.agent = self.start
        self.steps = 0
        self.goal_reached = False
        return self._observation(), {}

    def step(self, action) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        plain = type(action) in (int, np.int64) and 0 <= action < self.action_space.n  # the common case, fast
        if not plain and (isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action)):
            raise ValueError(f"action must be an integer in [0, {self.action_space.n - 1}], got {action!r}")
        dx, dy = ACTION_DELTAS[int(action)]
        x = min(max(self.agent[0] + int(dx), 0), self.size - 1)
        y = min(max(self.agent[1] + int(dy), 0), self.size - 1)
        self.agent = (x, y)
        self.steps += 1

        on_goal = self.agent == self.goal
        if self.reward_once:
            reward = 1.0 if on_goal and not self.goal_reached else 0.0
        else:
            reward = 1.0 if on_goal else 0.0
        self.goal_reached = self.goal_reached or on_goal
        truncated = self.steps >= self.max_steps
        return self._observation(), reward, False, truncated, {}

    def _observation(self) -> np.ndarray:
        return np.array(self.agent, dtype=np.int64)

    def render(self):
        marks = {"G": self.goal, "A": self.agent}
        if self.render_mode == "ansi":
            return render_grid_text(self.size, marks)
        if self.render_mode == "rgb_array":
            return render_grid_rgb(self.size, marks)
        return None


# Shared by the dark grid worlds. ``marks`` maps a letter to a cell (or None: not shown); "A" is
# the agent, drawn on top. Text: one letter per cell, "*" where the agent stands on another mark.
_MARK_COLOURS = {"G": (40, 180, 60), "K": (230, 200, 40), "D": (60, 120, 230)}


def render_grid_text(size: int, marks: dict[str, tuple[int, int] | None]) -> str:
    agent = marks.get("A")
    others = {cell: letter for letter, cell in marks.items() if letter != "A" and cell is not None}
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            cell = (x, y)
            if cell == agent:
                row.append("*" if cell in others else "A")
            else:
                row.append(others.get(cell, "."))
        rows.append(" ".join(row))
    return "\n".join(rows) + "\n"


def render_grid_rgb(size: int, marks: dict[str, tuple[int, int] | None]) -> np.ndarray:
    px = _CELL_PX
    image = np.full((size * px, size * px, 3), 40, dtype=np.uint8)
    image[::px, :] = 70  # grid lines
    image[:, ::px] = 70
    for letter, cell in marks.items():
        if letter != "A" and cell is not None:
            x, y = cell
            image[y * px + 2 : (y + 1) * px - 1, x * px + 2 : (x + 1) * px - 1] = _MARK_COLOURS[letter]
    if marks.get("A") is not None:
        ax, ay = marks["A"]
        image[ay * px + 4 : (ay + 1) * px - 3, ax * px + 4 : (ax + 1) * px - 3] = (220, 50, 50)
    return image


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

    @property
    def n_targets(self) -> int:
        return self.targets.shape[1]

    def arrived(self, observation) -> np.ndarray:
        """Per env: standing on its current target (where an unpaid target leaves it waiting)."""
        obs = np.asarray(observation).reshape(-1, 2)
        return (self.targets[np.arange(len(obs)), self.stage] == obs).all(axis=1)

    def observe(self, reward, done=None, state=None, next_obs=None):
        paid = np.asarray(reward).reshape(-1) > 0
        self.stage = np.minimum(self.stage + paid, self.targets.shape[1] - 1)
        if done is not None:
            self.stage[np.asarray(done, dtype=bool).reshape(-1)] = 0


# -- the family: one task per goal cell ------------------------------------------------------


def goal_grid(size: int) -> tuple[dict[str, Any], ...]:
    return tuple({"goal": (x, y)} for x in range(size) for y in range(size))


def goal_held_out(task: dict[str, Any]) -> bool:
    # Every fifth cell on a knight's-move lattice: spread evenly over the room, no two adjacent,
    # 16 of the 81 Dark Room goals and 58 of the 289 Dark Room Hard goals.
    x, y = task["goal"]
    return (x + 2 * y) % 5 == 0


GOAL_SPLIT_RULE = "test = goals (x, y) with (x + 2*y) % 5 == 0; train = the rest"


def goal_oracle(tasks: list[dict[str, Any]]) -> GridOracle:
    return GridOracle([[t["goal"]] for t in tasks])


add_family(
    TaskFamily(
        env_id="DarkRoom-v0",
        entry_point="ad_gym.envs.dark_room:DarkRoomEnv",
        all_tasks=goal_grid(9),
        is_test=goal_held_out,
        split_rule=GOAL_SPLIT_RULE,
        oracle=goal_oracle,
    )
)
