"""The Dark Room rules as the paper and the docs state them, written independently of ``ad_gym.envs``.

The env tests and the collection tests both check what happened against these.
"""

from dataclasses import dataclass

HORIZON = 20  # steps per episode
# action -> (dx, dy): 0 left, 1 right, 2 up, 3 down, 4 no-op; y grows downwards.
MOVES = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1), 4: (0, 0)}


@dataclass(frozen=True)
class Rules:
    size: int
    reward_once: bool  # Dark Room Hard: the goal pays only the first time it is reached in an episode

    @property
    def start(self):
        return (self.size // 2, self.size // 2)

    def move(self, cell, action):
        """The cell after `action`: one step, or none when the move runs into the wall."""
        dx, dy = MOVES[int(action)]
        clip = lambda v: min(max(v, 0), self.size - 1)  # noqa: E731
        return clip(int(cell[0]) + dx), clip(int(cell[1]) + dy)

    def reward(self, cell, goal, reached_before):
        """The reward for a step ending on `cell`; `reached_before`: the goal was reached earlier this episode."""
        return 1.0 if tuple(cell) == tuple(goal) and not (self.reward_once and reached_before) else 0.0


RULES = {"DarkRoom-v0": Rules(size=9, reward_once=False), "DarkRoomHard-v0": Rules(size=17, reward_once=True)}


def rules_of(env_id):
    return RULES[env_id.removeprefix("ad_gym/")]
