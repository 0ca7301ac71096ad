"""Agents with Stable-Baselines3's ``predict`` API: `ADAgent` and the reference baselines.

`load_agent` returns the agent of any checkpoint or shipped model, whichever method trained it.
"""

from ad_gym.agents.ad_agent import ADAgent, ADContext
from ad_gym.agents.baselines import RandomAgent, UCBAgent
from ad_gym.agents.wrappers import ADContextWrapper
from ad_gym.envs.tasks import oracle_for


def load_agent(path, **kwargs):
    """The agent for a checkpoint file, training folder or shipped model name (see `ad_gym.methods.load_agent`)."""
    from ad_gym.methods import load_agent as load

    return load(path, **kwargs)


__all__ = ["ADAgent", "ADContext", "ADContextWrapper", "RandomAgent", "UCBAgent", "load_agent", "oracle_for"]
