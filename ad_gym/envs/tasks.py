"""Task families and their fixed train / test splits: the machinery. Each family itself is
described once, next to its env, in that env's module (``add_family``).

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
    # The gym.ObservationWrapper class source learners see the env through (e.g. a has-key flag);
    # its static ``history_observation`` maps what it adds back to the env's own.
    source_wrapper: type | None = None
    # oracle(tasks): the goal-aware optimal policy for a batch of envs, one task each, with the
    # predict / observe interface of the agents. It is the reference row of every leaderboard
    # and the teacher of the methods that learn from optimal actions.
    oracle: Callable[[list[dict[str, Any]]], Any] | None = None
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


def oracle_for(env_id: str, tasks: list[dict[str, Any]]):
    """The goal-aware optimal policy of ``env_id``'s family for a batch of envs on ``tasks``."""
    fam = family(env_id)
    if fam.oracle is None:
        raise ValueError(f"{fam.env_id} has no oracle")
    return fam.oracle(list(tasks))


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
