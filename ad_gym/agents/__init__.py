"""Agents with Stable-Baselines3's ``predict`` API: `ADAgent` and the reference baselines."""

from ad_gym.agents.ad_agent import ADAgent, ADContext
from ad_gym.agents.baselines import GridOracle, RandomAgent, UCBAgent, oracle_for
from ad_gym.agents.wrappers import ADContextWrapper

__all__ = ["ADAgent", "ADContext", "ADContextWrapper", "GridOracle", "RandomAgent", "UCBAgent", "oracle_for"]
