"""ED, expert distillation: AD's model trained only on expert behaviour, the paper's control.

Its data is each source stream's last episodes (``expert_episodes``) or, where the source never
turns into an expert within its budget (UCB keeps exploring), demonstrations of the family's
goal-aware oracle (``expert_source``). With no improvement in its data, it cannot learn in context.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ad_gym.methods.ad import AD
from ad_gym.methods.base import Collection, RunData, register
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig


@register
@dataclass
class ED(AD):
    name = "ED"
    slug = "ed"
    summary = "expert distillation: the same model trained on expert episodes only (the paper's control)"

    config: TrainConfig = field(default_factory=TrainConfig)
    expert_episodes: int | None = 20  # each stream's last N episodes (None: all of them)
    expert_source: SourceConfig | None = None  # record experts with this source instead (e.g. algo "oracle")

    def collections(self) -> list[Collection]:
        return [Collection("expert", self.expert_source, ("train",))] if self.expert_source is not None else []

    def training_config(self) -> TrainConfig:
        return dataclasses.replace(self.config, expert_episodes=self.expert_episodes, every_k=1, max_episodes=None)

    def train_folders(self, data: RunData) -> list[Path]:
        if self.expert_source is None:
            return data.source_train[:1]
        return [data.folder(self.collections()[0], "train")]
