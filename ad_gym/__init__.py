"""ad-gym: in-context reinforcement learning by Algorithm Distillation.

``import ad_gym`` registers the environments (``gym.make("DarkRoom-v0")``) and exposes the
task splits and the learning-history datasets.
"""

from ad_gym.version import __version__
from ad_gym.envs import env_ids, tasks
from ad_gym.data.histories import History, HistoryFileError, load_histories

__all__ = ["History", "HistoryFileError", "__version__", "env_ids", "load_histories", "tasks"]
