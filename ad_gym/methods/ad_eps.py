"""AD-ε (Zisman et al. 2023): AD trained on histories of a noisy oracle instead of an RL source.

The family's goal-aware oracle acts with uniformly random actions mixed in, their probability ε
decaying over each stream's episodes (`ad_gym.sources.noisy_oracle`), so the histories look like a
learner improving; collecting them takes seconds, not an RL run per task. AD's trainer and agent
are used unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ad_gym.methods.ad import AD
from ad_gym.methods.base import Collection, RunData, register
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig


@register
@dataclass
class ADEps(AD):
    name = "AD-ε"
    slug = "ad-eps"
    summary = "AD on noise-distilled histories: the oracle with decaying random actions, no RL source"

    config: TrainConfig = field(default_factory=TrainConfig)
    source: SourceConfig = field(default_factory=lambda: SourceConfig(algo="oracle-eps", n_streams=16, total_steps=9600))
    train_tasks: int | None = None  # train tasks its histories cover (None: the preset's); see Collection

    def __post_init__(self):
        if self.source.algo != "oracle-eps":
            raise ValueError(f"AD-ε records its histories with algo 'oracle-eps', got {self.source.algo!r}")

    def collections(self) -> list[Collection]:
        return [Collection("oracle-eps", self.source, train_tasks=self.train_tasks)]

    def train_folders(self, data: RunData) -> list[Path]:
        return [data.folder(self.collections()[0], "train")]

    def validation_folder(self, data: RunData) -> Path:
        return data.folder(self.collections()[0], "test")
