"""ad-gym: in-context reinforcement learning by Algorithm Distillation.

``import ad_gym`` registers the environments (``gym.make("DarkRoom-v0")``) and exposes the
task splits, the learning-history datasets and `load_agent`.
"""

from ad_gym.version import __version__
from ad_gym.envs import env_ids, tasks
from ad_gym.data.histories import History, HistoryFileError, load_histories



def load_agent(path, **kwargs):
    """The agent of any checkpoint file, training folder or shipped model name (``"darkroom"``,
    ``"darkroom-dpt"``, ...), whichever method trained it; see `ad_gym.methods.load_agent`."""
    from ad_gym.methods import load_agent as load

    return load(path, **kwargs)


__all__ = ["History", "HistoryFileError", "__version__", "env_ids", "load_agent", "load_histories", "tasks"]
