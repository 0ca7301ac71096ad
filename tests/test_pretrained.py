"""The shipped pretrained models load offline by name and play."""

import gymnasium as gym
import numpy as np

from ad_gym.agents import ADAgent
from ad_gym.checkpoints import PRETRAINED_DIR


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


import pytest  # noqa: E402


LEARNERS = [("darkroom", "AD", "DarkRoom-v0"), ("darkroom-dpt", "DPT", "DarkRoom-v0"), ("darkroom-ad-eps", "AD-ε", "DarkRoom-v0"),
            ("keytodoor-ad-ps", "AD-PS", "DarkKeyToDoor-v1"), ("darkroom-hard-ad-ps", "AD-PS", "DarkRoomHard-v0"),
            ("darkroom-rl2", "RL2", "DarkRoom-v0"), ("watermaze-full", "AD", "Watermaze-v1")]
# A held-out task each learner is checked on (default: the family's first held-out task); on
# Hard, a goal 6 steps from the start, which a searching model finds within 30 episodes.
HELD_OUT = {"DarkRoom-v0": {"goal": (2, 4)}, "DarkRoomHard-v0": {"goal": (14, 8)}}


@pytest.mark.parametrize("name, method, env_id", [m for m in LEARNERS if (PRETRAINED_DIR / f"{m[0]}.pt").is_file()])
def test_one_loader_returns_the_agent_of_every_shipped_model(name, method, env_id):
    import ad_gym
    from ad_gym.checkpoints import checkpoint_method
    from ad_gym.evaluation import play_episodes

    agent = ad_gym.load_agent(name, env_id=env_id, seed=0)
    assert checkpoint_method(agent.meta) == method and agent.meta["provenance"]["command"].startswith("ad-gym run")
    held_out = [HELD_OUT.get(env_id) or ad_gym.tasks(env_id, "test")[0]]
    assert held_out[0] in ad_gym.tasks(env_id, "test")
    returns = play_episodes(lambda rows: agent, env_id, held_out, 30, seeds=[0, 1])
    assert returns[:, -5:].mean() > returns[:, :1].mean()  # these shipped models learn in context


FAMILY_MODELS = [("bandit", "AdversarialBandit-v0"), ("keytodoor", "DarkKeyToDoor-v1"), ("watermaze", "Watermaze-v1"),
                 ("darkroom-hard", "DarkRoomHard-v0")]


@pytest.mark.parametrize("name, env_id", [m for m in FAMILY_MODELS if (PRETRAINED_DIR / f"{m[0]}.pt").is_file()])
def test_every_family_ships_an_ad_model_made_by_its_default_preset(name, env_id):
    import ad_gym
    from ad_gym.checkpoints import checkpoint_method
    from ad_gym.evaluation import play_episodes

    agent = ad_gym.load_agent(name, seed=0)
    assert agent.env_id == env_id and checkpoint_method(agent.meta) == "AD"
    assert agent.meta["provenance"]["command"] == f"ad-gym run {env_id} --preset default --seed 0"
    returns = play_episodes(lambda rows: agent, env_id, ad_gym.tasks(env_id, "test")[:2], 3, seeds=[0])
    assert returns.shape == (2, 3) and np.isfinite(returns).all()


def test_the_shipped_models_stay_small():
    sizes = {path.name: path.stat().st_size for path in PRETRAINED_DIR.glob("*.pt")}
    assert sum(sizes.values()) < 10 * 2**20, sizes  # the package stays a few MB
