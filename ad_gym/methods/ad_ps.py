"""AD-PS: AD distilled from a posterior-sampling explorer built from the family's oracle.

Like AD-ε, no RL source: the histories are the oracle's, made to look like learning. Where AD-ε
mixes in random actions that fade, AD-PS's streams search: each episode heads for a hypothesis
among the targets the stream has not visited yet, drops a hypothesis reached unpaid for another,
and heads straight for every target it found in an earlier episode (`NoiseSchedule` with
``decoy``, ``resample`` and ``remember``; ``wander`` for families whose last target pays once,
so that the histories never show a stream waiting on a cell). AD imitates that search, and
explores as the explorer did (benchmarks/results/methods_notes.md). AD's trainer and agent are
used unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ad_gym.methods.ad_eps import ADEps
from ad_gym.methods.base import Collection, register
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig

EXPLORER = {"decoy": True, "resample": True, "remember": True, "eps_start": 0.2, "eps_end": 0.0, "decay_episodes": 20,
            "true_prob": 0.0}


@register
@dataclass
class ADPS(ADEps):
    name = "AD-PS"
    slug = "ad-ps"
    summary = "AD on the histories of a posterior-sampling explorer built from the oracle, no RL source"

    config: TrainConfig = field(default_factory=lambda: TrainConfig(every_k=1, max_episodes=None))
    source: SourceConfig = field(
        default_factory=lambda: SourceConfig(algo="oracle-eps", n_streams=8, total_steps=8 * 20 * 20, hyperparams=EXPLORER))

    def __post_init__(self):
        super().__post_init__()
        schedule = self.source.algo_kwargs()
        if not (schedule.get("resample") and schedule.get("remember")):
            raise ValueError("AD-PS records a searching explorer: its source needs decoy, resample and remember set "
                             f"(e.g. ad_gym.methods.ad_ps.EXPLORER), got {self.source.hyperparams}")

    def collections(self) -> list[Collection]:
        return [Collection("explorer", self.source, train_tasks=self.train_tasks)]
