"""AD, Algorithm Distillation (Laskin et al. 2022): imitate the source's whole learning histories.

The causal transformer of `ad_gym.models` is trained by next-action cross-entropy on windows of
the source learner's histories long enough to span several episodes (`ad_gym.training.train`);
frozen, it improves across episodes on new tasks. `ADAgent` plays it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ad_gym.methods.base import Method, RunData, register
from ad_gym.training import TrainConfig, check_training_data, train


@register
@dataclass
class AD(Method):
    name = "AD"
    slug = "ad"
    summary = "Algorithm Distillation: imitate the source's learning histories across episodes"

    config: TrainConfig = field(default_factory=TrainConfig)

    def training_config(self) -> TrainConfig:
        return self.config

    def train_folders(self, data: RunData) -> list[Path]:
        return data.source_train

    def validation_folder(self, data: RunData) -> Path:
        return data.source_test

    def check(self, data: RunData) -> None:
        for role, folders in (("training", self.train_folders(data)), ("validation", self.validation_folder(data))):
            try:
                check_training_data(folders, self.training_config())
            except ValueError as error:
                raise ValueError(f"{self.name} {role} data in {folders}: {error}") from error

    def train(self, data: RunData, out: Path, seed: int = 0, progress: bool = True,
              provenance: dict[str, Any] | None = None) -> Path:
        config = dataclasses.replace(self.training_config(), seed=seed)
        return train(self.train_folders(data), out, config, val_path=self.validation_folder(data), progress=progress,
                     provenance=provenance, method=self.name)
