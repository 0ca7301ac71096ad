"""RL²: trials of one task, a recurrent policy meta-trained on them, played by the shared harness."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from ad_gym.agents import ADAgent
from ad_gym.checkpoints import CheckpointError
from ad_gym.envs.tasks import tasks
from ad_gym.evaluation import play_episodes
from ad_gym.methods import RunData, load_agent
from ad_gym.methods.rl2 import RL2, RL2Agent, RL2Config, TrialEnv

TINY = RL2Config(total_steps=256, n_envs=2, n_steps=64, batch_size=64, n_epochs=1, episodes_per_trial=2,
                 lstm_hidden_size=16, net_arch=(16,))


@pytest.fixture(scope="module")
def rl2_checkpoint(tmp_path_factory):
    return RL2(TINY).train(RunData("DarkRoom-v0", [], None), tmp_path_factory.mktemp("rl2"), progress=False)


@pytest.mark.parametrize("env_id", ["DarkRoom-v0", "DarkKeyToDoor-v1", "AdversarialBandit-v0"])
def test_a_trial_is_several_episodes_of_one_task(env_id):
    env = TrialEnv(env_id, tasks(env_id, "train")[:4], episodes_per_trial=3)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    episode_ends = 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        episode_ends += int(obs[-1])  # the episode-end flag
        if terminated:
            break
    assert episode_ends == 3 and not truncated
    drawn = set()
    for _ in range(12):  # a new task every trial
        env.reset()
        drawn.add(str(env.env.spec.kwargs))
    assert len(drawn) > 1


def test_rl2_trains_saves_and_plays_through_the_shared_harness(rl2_checkpoint, tmp_path):
    agent = load_agent(rl2_checkpoint, seed=0)
    assert isinstance(agent, RL2Agent)
    held_out = tasks("DarkRoom-v0", "test")[:2]
    returns = play_episodes(lambda rows: agent, "DarkRoom-v0", held_out, 3, [0, 1])
    assert returns.shape == (4, 3)
    copy = RL2Agent.load(agent.save(tmp_path / "copy.pt"), seed=0)
    obs = np.array([[4, 4], [0, 0]])
    a, _ = agent.predict(obs, deterministic=True)
    b, _ = copy.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="not an AD model"):
        ADAgent.load(rl2_checkpoint)


def test_the_lstm_state_carries_across_episodes_of_one_context(rl2_checkpoint):
    agent = load_agent(rl2_checkpoint, seed=0)
    env = gym.make("DarkRoom-v0", goal=(0, 0))
    obs, _ = env.reset(seed=0)
    state = None
    for _ in range(20):  # one whole episode
        action, state = agent.predict(obs, state)
        obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(reward, terminated or truncated)
    assert truncated and state.ended.all()
    hidden_before = np.array(state.lstm[0]).copy()
    obs, _ = env.reset()
    _, state = agent.predict(obs, state, episode_start=np.array([True]))
    assert np.abs(hidden_before).sum() > 0 and not state.new.any()  # kept, not restarted, at the new episode


def test_a_finished_run_is_reused_and_never_overwritten(rl2_checkpoint):
    import dataclasses

    data = RunData("DarkRoom-v0", [], None)
    assert RL2(TINY).train(data, rl2_checkpoint.parent, progress=False) == rl2_checkpoint  # nothing retrained
    with pytest.raises(ValueError, match="other settings"):
        RL2(dataclasses.replace(TINY, total_steps=512)).train(data, rl2_checkpoint.parent, progress=False)


def test_bad_settings_and_envs_are_refused():
    with pytest.raises(ValueError, match="n_envs"):
        RL2Config(n_envs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        RL2Config(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="MultiDiscrete"):
        TrialEnv("Watermaze-v1", tasks("Watermaze-v1", "train")[:2], 2)
    with pytest.raises(ValueError, match="MultiDiscrete"):
        RL2(TINY).check(RunData("Watermaze-v1", [], None))


def test_a_prompt_is_fed_through_the_lstm_as_if_played(rl2_checkpoint):
    played, prompted = load_agent(rl2_checkpoint, seed=0), load_agent(rl2_checkpoint, seed=0)
    env = gym.make("DarkRoom-v0", goal=(2, 2))
    obs, _ = env.reset(seed=0)
    state, log = None, []
    for _ in range(25):
        action, state = played.predict(obs, state)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        played.observe(reward, terminated or truncated)
        log.append((obs, int(action), reward, terminated or truncated))
        obs = env.reset()[0] if terminated or truncated else next_obs
    observations, actions, rewards, dones = (np.array(column) for column in zip(*log))
    replayed = prompted.prompt(observations, actions, rewards, dones)
    np.testing.assert_allclose(replayed.lstm[0], state.lstm[0], atol=1e-6)
    with pytest.raises(ValueError, match="observation space"):
        prompted.prompt(np.full((1, 2), 99), np.array([0]), np.zeros(1), np.zeros(1, dtype=bool))


@pytest.mark.parametrize("critic", ["lstm", "shared"])
def test_every_critic_trains_and_reloads(critic, tmp_path):
    import dataclasses

    path = RL2(dataclasses.replace(TINY, critic=critic)).train(RunData("DarkRoom-v0", [], None), tmp_path, progress=False)
    agent = load_agent(path, seed=0)
    assert agent.policy.shared_lstm is (critic == "shared") and agent.policy.enable_critic_lstm is (critic == "lstm")
    with pytest.raises(ValueError, match="critic"):
        RL2Config(critic="both")


def test_checkpoints_from_before_the_critic_setting_still_load(rl2_checkpoint, tmp_path):
    """``critic_lstm: false`` meant a memoryless critic; no key at all, sb3-contrib's critic LSTM."""
    import dataclasses

    from ad_gym.checkpoints import load_checkpoint, save_checkpoint

    for legacy, critic in (({"critic_lstm": False}, "none"), ({}, "lstm")):
        folder = tmp_path / critic
        trained = RL2(dataclasses.replace(TINY, critic=critic)).train(RunData("DarkRoom-v0", [], None), folder, progress=False)
        meta, payload = load_checkpoint(trained)
        stored = {key: value for key, value in meta["rl2"].items() if key != "critic"} | legacy
        save_checkpoint(trained, {**meta, "rl2": stored}, {"policy": payload["policy"]})
        assert load_checkpoint(trained)[0]["rl2"] == stored
        assert load_agent(trained, seed=0).policy.enable_critic_lstm is (critic == "lstm")
        same = RL2(dataclasses.replace(TINY, critic=critic)).train(RunData("DarkRoom-v0", [], None), folder, progress=False)
        assert same == trained and load_checkpoint(same)[0]["rl2"] == stored  # a rerun reuses it, not retrains
    default = load_agent(rl2_checkpoint, seed=0).policy  # the default: the critic reads the actor's LSTM state
    assert default.shared_lstm and not default.enable_critic_lstm


def test_meta_training_leaves_nothing_in_the_temp_dir(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    RL2(TINY).train(RunData("DarkRoom-v0", [], None), tmp_path / "run", progress=False)
    assert [p.name for p in (tmp_path / "tmp").glob("SB3-*")] == []  # SB3's default logger's folder


def test_the_whole_sequence_lstm_pass_matches_sb3_contribs_step_by_step_loop():
    """Trials start at a sequence's first step; the fast path must give sb3-contrib's exact output."""
    import torch
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    from ad_gym.methods.rl2 import _trial_policy_class

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 8)
    n_seq, length = 3, 5
    features = torch.randn(n_seq * length, 6)
    states = (torch.randn(1, n_seq, 8), torch.randn(1, n_seq, 8))
    for starts in ([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]],  # at first steps only: the fast path
                   [[1, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]):  # inside sequences: the loop
        episode_starts = torch.tensor(starts, dtype=torch.float32).reshape(-1)
        fast = _trial_policy_class()._process_sequence(features, states, episode_starts, lstm)
        loop = RecurrentActorCriticPolicy._process_sequence(features, states, episode_starts, lstm)
        torch.testing.assert_close(fast[0], loop[0])
        torch.testing.assert_close(fast[1][0], loop[1][0])
        torch.testing.assert_close(fast[1][1], loop[1][1])


def test_meta_training_logs_the_first_and_last_episode_of_each_trial(rl2_checkpoint):
    from ad_gym.checkpoints import load_checkpoint

    log = load_checkpoint(rl2_checkpoint)[0]["meta_training"]
    assert log and {"steps", "trial_return", "first_episode", "last_episode"} <= set(log[-1])
    for point in log:  # two episodes per trial in TINY: first + last is the whole trial
        assert point["first_episode"] + point["last_episode"] == pytest.approx(point["trial_return"])
