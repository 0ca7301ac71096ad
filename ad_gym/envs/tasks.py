"""Task families and their fixed train / test splits.

A *task* is the dict of keyword arguments that fixes one member of a family, so the same object
works as ``gym.make(env_id, **task)`` and as ``env.reset(options=task)``: for Dark Room it is
``{"goal": (x, y)}``. Every family lists its tasks in one fixed order; a task's position in that
order is its index, which seeds the source agent that learns it (see `ad_gym.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

SPLITS = ("train", "test", "all")
NAMESPACE = "ad_gym"


@dataclass(frozen=True)
class TaskFamily:
    """One registered environment and the fixed split of its tasks."""

    env_id: str
    entry_point: str
    all_tasks: tuple[dict[str, Any], ...]
    is_test: Callable[[dict[str, Any]], bool]
    split_rule: str  # how the test split is chosen, for docs and metadata
    kwargs: dict[str, Any] = field(default_factory=dict)
    # "module:Class" of a gym.ObservationWrapper that source learners see the env through (e.g. a
    # has-key flag); its static ``history_observation`` maps what it adds back to the env's own.
    source_wrapper: str | None = None
    # Named evaluation conditions beyond the held-out "test" split, each a fixed task list.
    extra_splits: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    eval_splits: tuple[str, ...] = ("test",)  # what the leaderboard evaluates on
    default_source: str = "a2c"  # the source algorithm of the paper for this family

    @property
    def split_names(self) -> tuple[str, ...]:
        return (*SPLITS, *self.extra_splits)

    def split(self, name: str) -> list[dict[str, Any]]:
        if name not in self.split_names:
            raise ValueError(f"unknown split {name!r} for {self.env_id}; expected one of {list(self.split_names)}")
        if name in self.extra_splits:
            return [dict(t) for t in self.extra_splits[name]]
        if name == "all":
            return [dict(t) for t in self.all_tasks]
        want_test = name == "test"
        return [dict(t) for t in self.all_tasks if self.is_test(t) == want_test]

    def index(self, task: dict[str, Any]) -> int:
        """The task's position in the family's fixed order (extra splits' tasks come after "all")."""
        key = task_key(task)
        ordered = [*self.all_tasks, *(t for tasks in self.extra_splits.values() for t in tasks)]
        for i, candidate in enumerate(ordered):
            if task_key(candidate) == key:
                return i
        raise ValueError(f"{task!r} is not a task of {self.env_id}")


_FAMILIES: dict[str, TaskFamily] = {}


def add_family(family: TaskFamily) -> None:
    _FAMILIES[family.env_id] = family


def canonical_env_id(env_id: str) -> str:
    """``"ad_gym/DarkRoom-v0"`` and ``"DarkRoom-v0"`` both name ``"DarkRoom-v0"``."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string such as 'DarkRoom-v0', got {env_id!r}")
    plain = env_id[len(NAMESPACE) + 1 :] if env_id.startswith(NAMESPACE + "/") else env_id
    if plain not in _FAMILIES:
        raise ValueError(f"unknown env id {env_id!r}; ad_gym provides {sorted(_FAMILIES)}")
    return plain


def family(env_id: str) -> TaskFamily:
    return _FAMILIES[canonical_env_id(env_id)]


def env_ids() -> list[str]:
    return sorted(_FAMILIES)


def tasks(env_id: str, split: str = "train") -> list[dict[str, Any]]:
    """The tasks of ``env_id`` in the fixed ``split`` ("train", "test" or "all"), in family order.

    >>> ad_gym.tasks("DarkRoom-v0", "test")[:2]
    [{'goal': (0, 0)}, {'goal': (0, 5)}]
    """
    return family(env_id).split(split)


def task_key(task: dict[str, Any]) -> str:
    """A short, file-name-safe name of a task: ``{"goal": (3, 5)}`` -> ``"goal-3-5"``."""
    parts = []
    for name in sorted(task):
        value = task[name]
        values = value if isinstance(value, (tuple, list)) else (value,)
        parts.append("-".join([name, *(_flat(v) for v in values)]))
    return "_".join(parts)


def _flat(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "-".join(_flat(v) for v in value)
    return str(value)


def normalize_task(task: dict[str, Any]) -> dict[str, Any]:
    """Tuples for sequences, so a task read back from JSON compares equal to the original."""
    return {k: _tuples(v) for k, v in task.items()}


def _tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


# -- the families ------------------------------------------------------------------------------


def goal_grid(size: int) -> tuple[dict[str, Any], ...]:
    return tuple({"goal": (x, y)} for x in range(size) for y in range(size))


def goal_held_out(task: dict[str, Any]) -> bool:
    # Every fifth cell on a knight's-move lattice: spread evenly over the room, no two adjacent,
    # 16 of the 81 Dark Room goals and 58 of the 289 Dark Room Hard goals.
    x, y = task["goal"]
    return (x + 2 * y) % 5 == 0


GOAL_SPLIT_RULE = "test = goals (x, y) with (x + 2*y) % 5 == 0; train = the rest"

add_family(
    TaskFamily(
        env_id="DarkRoom-v0",
        entry_point="ad_gym.envs.dark_room:DarkRoomEnv",
        all_tasks=goal_grid(9),
        is_test=goal_held_out,
        split_rule=GOAL_SPLIT_RULE,
    )
)
add_family(
    TaskFamily(
        env_id="DarkRoomHard-v0",
        entry_point="ad_gym.envs.dark_room_hard:DarkRoomHardEnv",
        all_tasks=goal_grid(17),
        is_test=goal_held_out,
        split_rule=GOAL_SPLIT_RULE,
    )
)


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
    source_wrapper="ad_gym.envs.dark_key_to_door:KeyFlagObservation",
)
add_family(_KEY_TO_DOOR)
# v1: the same tasks and split, but every episode runs all 50 steps (the door does not end it), as
# in the paper, whose 200-step context is 4 Key-to-Door episodes. v0 stays for earlier results.
add_family(replace(_KEY_TO_DOOR, env_id="DarkKeyToDoor-v1", kwargs={"terminate_on_door": False}))


def bandit_tasks(condition: str, count: int, seed: int) -> tuple[dict[str, Any], ...]:
    from ad_gym.envs.adversarial_bandit import sample_means

    rng = np.random.RandomState(seed)  # legacy RNG: its streams never change, so neither do the lists
    return tuple({"means": sample_means(rng, condition)} for _ in range(count))


_BANDIT_TRAIN, _BANDIT_TEST = bandit_tasks("odd", 1000, seed=1), bandit_tasks("odd", 100, seed=2)
_BANDIT_TEST_KEYS = frozenset(task_key(t) for t in _BANDIT_TEST)

add_family(
    TaskFamily(
        env_id="AdversarialBandit-v0",
        entry_point="ad_gym.envs.adversarial_bandit:AdversarialBanditEnv",
        all_tasks=_BANDIT_TRAIN + _BANDIT_TEST,
        is_test=lambda task: task_key(task) in _BANDIT_TEST_KEYS,
        split_rule="train = 1000 tasks of the 'odd' condition (RandomState(1)); test = 100 more (RandomState(2)); "
        "even = 100 tasks of the 'even' condition (RandomState(3)); uniform = 100 of 'uniform' (RandomState(4))",
        extra_splits={"even": bandit_tasks("even", 100, seed=3), "uniform": bandit_tasks("uniform", 100, seed=4)},
        eval_splits=("test", "even", "uniform"),
        default_source="ucb",
    )
)


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
)
add_family(_WATERMAZE)
# v1: the same tasks and split, with compass moves (east, south, west, north) instead of turns.
add_family(replace(_WATERMAZE, env_id="Watermaze-v1", kwargs={"moves": "compass"}))
