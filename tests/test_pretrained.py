"""The shipped pretrained Dark Room model loads offline by name and plays."""

import gymnasium as gym

from ad_gym.agents import ADAgent


def test_pretrained_darkroom_loads_and_plays():
    agent = ADAgent.load("darkroom", seed=0)
    assert agent.env_id == "DarkRoom-v0"
    provenance = agent.meta["provenance"]
    assert provenance["command"].startswith("ad-gym run DarkRoom-v0") and "ad_gym_version" in provenance
    assert "seed" in provenance["pipeline"]
    env = gym.make("DarkRoom-v0", goal=(0, 5))  # a held-out goal
    obs, _ = env.reset(seed=0)
    state, returns, episode_return = None, [], 0.0
    for _ in range(3 * 20):
        action, state = agent.predict(obs, state)
        obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(reward, terminated or truncated)
        episode_return += reward
        if terminated or truncated:
            returns.append(episode_return)
            obs, episode_return = env.reset()[0], 0.0
    assert len(returns) == 3 and all(0 <= r <= 20 for r in returns)
    assert state.transitions()["obs"].shape == (1, 60, 2)


def test_unknown_pretrained_name_lists_the_shipped_ones():
    import pytest

    from ad_gym.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="darkroom"):
        ADAgent.load("no-such-model")
