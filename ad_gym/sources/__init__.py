"""Source learners (Stable-Baselines3 algorithms) and the recorder of their learning histories."""

from ad_gym.sources.collect import collect
from ad_gym.sources.recorder import HistoryRecorder
from ad_gym.sources.sb3 import SourceConfig, learn_task

__all__ = ["HistoryRecorder", "SourceConfig", "collect", "learn_task"]
