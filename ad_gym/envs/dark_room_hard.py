"""Dark Room Hard: a larger dark room whose goal pays only once per episode."""

from __future__ import annotations

import numpy as np

from ad_gym.envs.dark_room import GOAL_SPLIT_RULE, DarkRoomEnv, goal_grid, goal_held_out, goal_oracle
from ad_gym.envs.tasks import TaskFamily, add_family


class DarkRoomHardEnv(DarkRoomEnv):
    """
    ## Description

    The sparse-reward variant of Dark Room (Laskin et al. 2022): a 17x17 grid, the same 20-step
    episodes and centre start, and a goal that pays only the first time it is reached in an
    episode. Most goals are out of a random walk's reach, so the agent has to learn from rare
    successes; 289 tasks.

    ## Action Space

    `Discrete(5)`: 0 left, 1 right, 2 up, 3 down, 4 no-op, as in `DarkRoomEnv`.

    ## Observation Space

    `MultiDiscrete([17, 17])`: the agent's cell ``(x, y)``.

    ## Rewards

    +1 on the first step of an episode that ends on the goal cell, 0 on every other step: the
    return of an episode is 1 if the goal was reached, else 0.

    ## Starting State

    The centre cell (8, 8).

    ## Episode End

    Truncated after 20 steps; reaching the goal does not end the episode.

    ## Tasks

    As in `DarkRoomEnv`: ``goal=(x, y)`` at ``gym.make``, ``options={"goal": ...}`` at reset, or
    drawn from ``self.np_random`` on the first and on every seeded reset.

    ## Version History

    * v0: initial version.
    """

    reward_once = True

    def __init__(self, goal=None, render_mode=None, size: int = 17, max_steps: int = 20):
        super().__init__(goal=goal, render_mode=render_mode, size=size, max_steps=max_steps)


def shuffled_goals(size: int) -> tuple[dict, ...]:
    # A fixed shuffle (NumPy's legacy RandomState, whose streams never change), so the first N
    # tasks of a split are spread over the room rather than all in its left columns.
    goals = goal_grid(size)
    return tuple(goals[i] for i in np.random.RandomState(0).permutation(len(goals)))


add_family(
    TaskFamily(
        env_id="DarkRoomHard-v0",
        entry_point="ad_gym.envs.dark_room_hard:DarkRoomHardEnv",
        all_tasks=shuffled_goals(17),
        is_test=goal_held_out,
        split_rule=f"{GOAL_SPLIT_RULE}; tasks listed in a fixed shuffled order (numpy RandomState(0))",
        oracle=goal_oracle,
    )
)
