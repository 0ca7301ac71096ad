"""What every in-context method is to the pipeline: data it asks for, training, the agent that plays it.

A method is one module under ``ad_gym/methods/`` holding a `Method` subclass decorated with
`register`. The pipeline, evaluation and benchmarks only ever iterate over the methods a preset
names and call this interface; none of them knows a method by name. A new method is one module:

    @register
    class MyMethod(Method):
        name = "MINE"
        def train(self, data, out, seed=0, progress=True, provenance=None):
            ...                     # write a checkpoint whose metadata says "method": "MINE"
            return checkpoint_path

Checkpoints record the method that made them, so `load_agent` returns the right agent for any
checkpoint or shipped model name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ad_gym.checkpoints import CheckpointError, checkpoint_method, load_checkpoint, resolve_checkpoint
from ad_gym.sources.sb3 import SourceConfig


@dataclass(frozen=True)
class Collection:
    """Histories a method needs besides the source's: recorded with ``source`` on ``splits``
    (the held-out split gives the validation loss). Methods that ask for equal collections share
    one folder."""

    name: str  # folder name under the run's histories/: <name>-<split>
    source: SourceConfig
    splits: tuple[str, ...] = ("train", "test")
    # The first N train tasks (None: the preset's train_tasks). An oracle's histories cost seconds
    # where the RL source's cost minutes per task, so a method may train on more tasks than the
    # source was run on; held-out tasks are always the preset's.
    train_tasks: int | None = None

    def __post_init__(self):
        if self.train_tasks is not None and (isinstance(self.train_tasks, bool) or not isinstance(self.train_tasks, int)
                                             or self.train_tasks < 1):
            raise ValueError(f"train_tasks must be a positive integer or None, got {self.train_tasks!r}")


@dataclass
class RunData:
    """Where a pipeline run keeps the histories a method can train on."""

    env_id: str
    source_train: list[Path]  # the source's learning histories on the train tasks (one folder per learner)
    source_test: Path  # the source's histories on the held-out tasks (validation)
    collections: dict[tuple[str, str], Path] = field(default_factory=dict)  # (collection name, split) -> folder

    def folder(self, collection: Collection, split: str) -> Path:
        return self.collections[(collection.name, split)]


class Method:
    """One in-context method: the data it trains on, how it trains, which agent plays it."""

    name: ClassVar[str]  # the label on leaderboards and in checkpoints
    slug: ClassVar[str]  # a file-name-safe name: the run's sub-folder for its checkpoint
    summary: ClassVar[str] = ""  # one line for docs and --help

    def collections(self) -> list[Collection]:
        """Histories to record before training, besides the source's (default: none)."""
        return []

    def check(self, data: RunData) -> None:
        """Raise the ValueError training would raise on this data, before any long stage runs."""

    def train(self, data: RunData, out: Path, seed: int = 0, progress: bool = True,
              provenance: dict[str, Any] | None = None) -> Path:
        """Train (or resume) into the folder ``out``; return the checkpoint's path."""
        raise NotImplementedError

    def work(self) -> float:
        """A rough size of its training, to schedule methods side by side (default: its updates)."""
        return float(getattr(getattr(self, "config", None), "updates", 0) or 1)

    def budget(self) -> str:
        """What its training costs, in its own unit, for the leaderboards' cost tables."""
        updates = getattr(getattr(self, "config", None), "updates", None)
        return f"{updates:,} updates" if updates else ""

    @classmethod
    def load_agent(cls, path: str | os.PathLike, **kwargs):
        """The agent that plays a checkpoint of this method (default: `ADAgent`)."""
        from ad_gym.agents.ad_agent import ADAgent

        return ADAgent.load(path, **kwargs)


METHODS: dict[str, type[Method]] = {}


def register(method: type[Method]) -> type[Method]:
    """Class decorator: make ``method`` known to `load_agent` by its name."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"a method named {method.name!r} is registered already: {METHODS[method.name]}")
    METHODS[method.name] = method
    return method


def load_agent(path: str | os.PathLike, **kwargs):
    """The agent for any checkpoint file, training folder or shipped model name, whatever the
    method that trained it (recorded in the checkpoint; checkpoints from before methods were
    recorded are AD's). Keyword arguments go to the agent's ``load`` (``env_id``, ``env``, ``seed``)."""
    meta, _ = load_checkpoint(resolve_checkpoint(path))
    name = checkpoint_method(meta)
    if name not in METHODS:
        raise CheckpointError(f"{path} was trained by method {name!r}, which this ad_gym does not know; known: {sorted(METHODS)}")
    return METHODS[name].load_agent(path, **kwargs)
