"""Watermaze: find a hidden platform in an open arena from egocentric pixels, rebuilt on MiniGrid."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from gymnasium import spaces
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Wall
from minigrid.minigrid_env import MiniGridEnv

from ad_gym.envs.checks import check_int, check_render_mode
from ad_gym.envs.horizon import HorizonInSpec
from ad_gym.envs.dark_room import validate_cell
from ad_gym.envs.tasks import TaskFamily, add_family

# Each side of the arena has its own colour, striped with grey every other cell, and the corners
# are grey: what the agent sees of the walls tells it where it is and which way it faces.
SIDE_COLOURS = {"north": "red", "south": "green", "west": "yellow", "east": "blue"}
TURN_LEFT, TURN_RIGHT, FORWARD = range(3)  # MiniGrid's own numbering of these actions
EAST, SOUTH, WEST, NORTH = range(4)  # compass moves, numbered as MiniGrid's directions
MOVE_SETS = {
    "turn": "0 (turn left), 1 (turn right) or 2 (forward)",
    "compass": "0 (east), 1 (south), 2 (west) or 3 (north)",
}
VIEW = 9  # cells per side of the egocentric view


def validate_platform(platform: Any, size: int) -> tuple[int, int]:
    """An interior cell ``(x, y)`` of a ``size`` x ``size`` arena (walls on the border), not the
    start cell at its centre."""
    x, y = validate_cell(platform, size, "platform")
    if not (1 <= x <= size - 2 and 1 <= y <= size - 2):
        raise ValueError(
            f"platform {(x, y)} is outside the arena: x and y must be integers in [1, {size - 2}] (the border is wall)"
        )
    if (x, y) == (size // 2, size // 2):
        raise ValueError(f"platform {(x, y)} is the start cell; choose another interior cell")
    return x, y


class WatermazeEnv(HorizonInSpec, MiniGridEnv):
    """
    ## Description

    The Watermaze of Laskin et al. (2022), a DeepMind Lab task, rebuilt on MiniGrid so it installs
    from PyPI: an open square arena whose walls carry distinct colour patterns, and a hidden
    platform the agent must find and then return to, episode after episode, from a fixed start.
    The platform is never rendered, in observations or in `render()`: only the reward reveals it.
    The task is the platform cell: 80 tasks in the default 11x11 arena (9x9 open cells, all but
    the start).

    How it differs from DMLab's: a 2-D grid with 4 headings instead of a continuous 3-D room;
    the agent sees a 9x9-cell egocentric top-down patch (MiniGrid's partial view, rendered as
    RGB) instead of a first-person perspective image; the platform is one cell; 3 (v0) or 4 (v1)
    actions instead of 8; reaching the platform ends the episode.

    ## Action Space

    v0 (``moves="turn"``): `Discrete(3)`: 0 turn left, 1 turn right, 2 move forward (MiniGrid's
    numbering). v1 (``moves="compass"``): `Discrete(4)`: 0 east, 1 south, 2 west, 3 north; each
    turns the agent to face that way and steps one cell, so the view still looks where the agent
    went (MiniGrid's direction numbering). Moving into a wall leaves the agent in place (v1: facing
    the wall).

    ## Observation Space

    `Box(0, 255, (9 * tile, 9 * tile, 3), uint8)`: MiniGrid's egocentric view, the 9x9 cells
    ahead of and beside the agent, rendered at ``tile`` pixels per cell (4: a 36x36 RGB image,
    the smallest SB3's default CNN accepts). The agent is always at the bottom centre facing up.
    Some wall is in view from almost every pose, so position and heading can be inferred from the
    pixels (as in DMLab, from the patterned walls), if not always from one frame.

    ## Rewards

    1 on the step that moves the agent onto the platform, 0 otherwise.

    ## Starting State

    The centre of the arena, facing up (north), every episode.

    ## Episode End

    Terminated on reaching the platform; truncated after ``max_steps`` steps (50).

    ## Tasks

    ``gym.make("Watermaze-v0", platform=(x, y))`` or ``reset(options={"platform": (x, y)})``;
    otherwise drawn from ``self.np_random`` on the first reset and on every seeded reset. Plain
    ``reset()`` keeps it. ``ad_gym.tasks("Watermaze-v0", split)`` lists the fixed split.

    ## Arguments

    * ``platform``: the hidden cell, or ``None`` to draw it at reset.
    * ``render_mode``: ``"rgb_array"`` (the whole arena from above, the agent's view lighter).
    * ``size``: side of the arena including its walls (11); ``max_steps``: episode length (50).
    * ``tile``: pixels per cell in observations (4).
    * ``moves``: ``"turn"`` (v0) or ``"compass"`` (v1), the action set above.

    ## Version History

    * v1: compass moves instead of turns. Going back to a platform found earlier is then the same
      move whatever the heading, as in Dark Room; with turns, AD learnt to find platforms but not
      to walk back to them (benchmarks/results/watermaze_recipe.md).
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        platform: tuple[int, int] | None = None,
        render_mode: str | None = None,
        size: int = 11,
        max_steps: int = 50,
        tile: int = 4,
        moves: str = "turn",
    ):
        if moves not in MOVE_SETS:
            raise ValueError(f"moves must be one of {sorted(MOVE_SETS)}, got {moves!r}")
        if check_int("size", size, 5, "an odd integer >= 5 (the arena needs a centre)") % 2 == 0:
            raise ValueError(f"size must be an odd integer >= 5 (the arena needs a centre), got {size!r}")
        check_int("max_steps", max_steps, 1)
        check_int("tile", tile, 2, "an integer >= 2 (pixels per cell)")
        check_render_mode(render_mode, self.metadata)
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: "find the hidden platform"),
            grid_size=int(size),
            max_steps=int(max_steps),
            see_through_walls=True,  # an open arena: nothing occludes, and the visibility pass is skipped
            agent_view_size=VIEW,
            render_mode=render_mode,
        )
        self.size, self.tile = int(size), int(tile)
        self._views: dict[tuple[int, int, int], np.ndarray] = {}
        self.start = (self.size // 2, self.size // 2)
        self.moves = moves
        self.action_space = spaces.Discrete(3 if moves == "turn" else 4)
        side = VIEW * self.tile
        self.observation_space = spaces.Box(0, 255, (side, side, 3), dtype=np.uint8)
        self._task_fixed = platform is not None
        self.platform = validate_platform(platform, self.size) if platform is not None else None

    @property
    def task(self) -> dict[str, Any]:
        return {"platform": self.platform}

    def optimal_return(self) -> float:
        return 1.0 if self.optimal_steps() <= self.max_steps else 0.0

    def optimal_steps(self) -> int:
        """Fewest steps from the start (facing up) onto the platform: moves, plus the turns needed in v0."""
        if self.platform is None:
            raise RuntimeError("the platform is not set yet: call reset() first")
        dx, dy = self.platform[0] - self.start[0], self.platform[1] - self.start[1]
        moves = abs(dx) + abs(dy)
        if self.moves == "compass":
            return moves
        if dx == 0:
            turns = 0 if dy < 0 else 2
        else:
            turns = 1 if dy <= 0 else 2  # turn once to go sideways; from below: turn twice (or sideways, then down)
        return moves + turns

    def _gen_grid(self, width: int, height: int) -> None:
        self.grid = Grid(width, height)
        last = width - 1
        for i in range(width):
            stripe = i % 2 == 1
            for (x, y), side in (((i, 0), "north"), ((i, last), "south"), ((0, i), "west"), ((last, i), "east")):
                corner = i in (0, last)
                self.grid.set(x, y, Wall("grey" if corner or not stripe else SIDE_COLOURS[side]))
        self.agent_pos = self.start
        self.agent_dir = NORTH

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = options or {}
        unknown = set(options) - {"platform"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; WatermazeEnv accepts only 'platform'")
        if options.get("platform") is not None:
            self.platform, self._task_fixed = validate_platform(options["platform"], self.size), True
        obs, info = super().reset(seed=seed)
        if self.platform is None or (seed is not None and not self._task_fixed):
            cells = platform_cells(self.size)
            self.platform = cells[int(self.np_random.integers(len(cells)))]["platform"]
        return obs, info

    def step(self, action):
        if self.platform is None:
            raise RuntimeError("call reset() before step()")
        if isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action):
            raise ValueError(f"action must be {MOVE_SETS[self.moves]}, got {action!r}")
        if self.moves == "compass":
            self.agent_dir, action = int(action), FORWARD
        obs, _, _, truncated, info = super().step(int(action))
        found = tuple(int(v) for v in self.agent_pos) == self.platform
        return obs, float(found), found, truncated and not found, info

    def gen_obs(self) -> np.ndarray:
        # The egocentric patch as RGB pixels (MiniGrid's own observation is a symbolic dict). The
        # arena never changes and the platform is invisible, so the image depends on the pose
        # alone: render each pose once.
        pose = (int(self.agent_pos[0]), int(self.agent_pos[1]), int(self.agent_dir))
        if pose not in self._views:
            self._views[pose] = self.get_pov_render(self.tile)
        return self._views[pose].copy()

    def render(self):
        if self.render_mode == "rgb_array":
            return self.get_full_render(highlight=True, tile_size=16)
        return None


class PlanOracle:
    """Replays a fixed optimal action sequence per env from the start of every episode.

    For envs with a fixed start and deterministic moves whose observations do not give the
    position away (Watermaze's pixels): the plan walks straight to the goal.
    """

    def __init__(self, plans):
        self.plans = [list(plan) for plan in plans]
        self.t = np.zeros(len(self.plans), dtype=np.int64)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        if episode_start is not None:
            self.t[np.asarray(episode_start, dtype=bool).reshape(-1)] = 0
        actions = np.array([plan[min(t, len(plan) - 1)] for plan, t in zip(self.plans, self.t)], dtype=np.int64)
        return (actions if len(np.shape(observation)) == 4 else actions[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        self.t += 1
        if done is not None:
            self.t[np.asarray(done, dtype=bool).reshape(-1)] = 0


def watermaze_plan(platform, start=(5, 5), moves: str = "turn") -> list[int]:
    """Actions from the start, facing up, onto ``platform`` in the fewest steps: turns and forward
    moves (``moves="turn"``, Watermaze-v0) or compass moves (``"compass"``, v1)."""
    dx, dy = platform[0] - start[0], platform[1] - start[1]
    if moves == "compass":
        return [WEST if dx < 0 else EAST] * abs(dx) + [NORTH if dy < 0 else SOUTH] * abs(dy)
    if dx == 0:
        return [FORWARD] * -dy if dy < 0 else [TURN_LEFT, TURN_LEFT] + [FORWARD] * dy
    sideways = TURN_LEFT if dx < 0 else TURN_RIGHT
    if dy < 0:  # up first, then sideways
        return [FORWARD] * -dy + [sideways] + [FORWARD] * abs(dx)
    # sideways first, then down: from facing left, down is a left turn; from facing right, a right turn
    return [sideways] + [FORWARD] * abs(dx) + ([sideways] + [FORWARD] * dy if dy > 0 else [])


# -- the family: one task per platform cell --------------------------------------------------


def platform_cells(size: int) -> tuple[dict[str, Any], ...]:
    """Every Watermaze task of a ``size`` arena: each interior cell but the start at the centre."""
    centre = (size // 2, size // 2)
    return tuple(
        {"platform": (x, y)} for x in range(1, size - 1) for y in range(1, size - 1) if (x, y) != centre
    )


_WATERMAZE = TaskFamily(
    env_id="Watermaze-v0",
    entry_point="ad_gym.envs.watermaze:WatermazeEnv",
    all_tasks=platform_cells(11),
    is_test=lambda task: (task["platform"][0] + 2 * task["platform"][1]) % 5 == 0,
    split_rule="test = platforms (x, y) with (x + 2*y) % 5 == 0; train = the rest (the start cell is never one)",
    default_source="ppo",
    oracle=lambda tasks: PlanOracle([watermaze_plan(t["platform"], moves="turn") for t in tasks]),
)
add_family(_WATERMAZE)
# v1: the same tasks and split, with compass moves (east, south, west, north) instead of turns.
add_family(replace(_WATERMAZE, env_id="Watermaze-v1", kwargs={"moves": "compass"},
                   oracle=lambda tasks: PlanOracle([watermaze_plan(t["platform"], moves="compass") for t in tasks])))
