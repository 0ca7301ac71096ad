"""Agents with Stable-Baselines3's ``predict`` API: `ADAgent` and the reference baselines.

`load_agent` returns the agent of any checkpoint or shipped model, whichever method trained it.
"""

from ad_gym import load_agent
from ad_gym.agents.ad_agent import ADAgent, ADContext, ContextDroppedWarning
from ad_gym.agents.baselines import RandomAgent, UCBAgent
from ad_gym.agents.wrappers import ADContextVectorWrapper, ADContextWrapper
from ad_gym.envs.tasks import oracle_for

__all__ = ["ADAgent", "ADContext", "ADContextVectorWrapper", "ADContextWrapper", "ContextDroppedWarning", "RandomAgent", "UCBAgent", "load_agent", "oracle_for"]
