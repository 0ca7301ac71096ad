"""ADAgent: SB3's predict contract, the multi-episode context, checkpoints and the VecEnv wrapper."""

import dataclasses
import json
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from ad_gym.agents import ADAgent, ADContextWrapper, ContextDroppedWarning
from ad_gym.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from ad_gym.models.transformer import ADConfig, ADTransformer
from ad_gym.envs.dark_room_hard import DarkRoomHardEnv
from ad_gym.training import train
from tests.conftest import TINY_TRAIN


@pytest.fixture
def agent(tiny_checkpoint):
    return ADAgent.load(tiny_checkpoint, seed=0)


def play(agent, n_steps, goal=(1, 7), seed=0):
    """A plain Gymnasium loop with the one extra call; returns what really happened."""
    env = gym.make("DarkRoom-v0", goal=goal)
    obs, _ = env.reset(seed=seed)
    state, log = None, []
    for _ in range(n_steps):
        action, state = agent.predict(obs, state)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        log.append((obs, int(action), reward))
        agent.observe(reward, terminated or truncated, next_obs=next_obs)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return state, log


def test_predict_shapes_single_and_batched(agent):
    action, state = agent.predict(np.array([4, 4]))
    assert np.shape(action) == () and agent.action_space.contains(int(action))
    agent.observe(0.0, False)
    actions, state = agent.predict(np.array([[4, 4], [0, 0], [8, 8]]), state=None)
    assert actions.shape == (3,) and state.n_envs == 3


def test_context_holds_the_true_transitions_across_episodes(agent):
    state, log = play(agent, n_steps=50)  # 2.5 episodes, fewer tokens than the agent keeps
    context = state.transitions()
    obs, actions, rewards = (np.array(x) for x in zip(*log))
    np.testing.assert_array_equal(context["obs"][0], obs)
    np.testing.assert_array_equal(context["prev_actions"][0], [agent.config.n_actions, *actions[:-1]])
    np.testing.assert_array_equal(context["prev_rewards"][0], [0.0, *rewards[:-1]])
    np.testing.assert_array_equal(context["steps"][0], np.arange(50) % 20)  # new episodes restart the step count


def test_context_under_vec_env_auto_reset(agent):
    venv = ADContextWrapper(make_vec_env("DarkRoom-v0", n_envs=2, seed=0, env_kwargs={"goal": (1, 7)}), agent)
    obs, state, starts = venv.reset(), None, np.ones(2, dtype=bool)
    seen, paid = [], []
    for _ in range(45):
        actions, state = agent.predict(obs, state, episode_start=starts)
        seen.append(obs.copy())
        obs, rewards, starts, _ = venv.step(actions)
        paid.append(rewards.copy())
    context = state.transitions()
    np.testing.assert_array_equal(context["obs"], np.stack(seen, axis=1))
    np.testing.assert_array_equal(context["prev_rewards"][:, 1:], np.stack(paid, axis=1)[:, :-1])
    np.testing.assert_array_equal(context["steps"][0], np.arange(45) % 20)


@pytest.fixture(scope="module")
def prev_obs_checkpoint(tiny_histories, tmp_path_factory):
    """The tiny model with the previous observation in each token."""
    return train(tiny_histories[0], tmp_path_factory.mktemp("prev_obs"), dataclasses.replace(TINY_TRAIN, prev_obs=True),
                 progress=False)


@pytest.mark.parametrize("checkpoint", ["tiny_checkpoint", "prev_obs_checkpoint", "final_obs_checkpoint"])
def test_cache_gives_the_same_probabilities_as_recompute(checkpoint, request):
    checkpoint = request.getfixturevalue(checkpoint)
    cached, recompute = ADAgent.load(checkpoint, seed=3), ADAgent.load(checkpoint, seed=3, use_cache=False)
    obs = np.array([[4, 4], [2, 3]])
    state_c = state_r = None
    for t in range(130):  # past the model's full reach, so the cache must slide
        a_c, state_c = cached.predict(obs, state_c)
        a_r, state_r = recompute.predict(obs, state_r)
        np.testing.assert_array_equal(a_c, a_r)
        obs = np.stack([np.clip(obs[:, 0] + (a_c == 1) - (a_c == 0), 0, 8), np.clip(obs[:, 1] + (a_c == 3) - (a_c == 2), 0, 8)], 1)
        for a in (cached, recompute):
            a.observe(np.array([t % 3 == 0, 0.0]), np.array([t % 20 == 19] * 2), next_obs=obs)
    # and the logits themselves agree on the next step
    c, r = cached._logits(state_c, obs), recompute._logits(state_r, obs)
    torch.testing.assert_close(c, r, atol=1e-5, rtol=1e-5)


def test_final_obs_agent_keeps_the_view_each_episode_ended_on(final_obs_checkpoint):
    agent = ADAgent.load(final_obs_checkpoint, seed=0)
    venv = ADContextWrapper(make_vec_env("DarkRoom-v0", n_envs=2, seed=0, env_kwargs={"goal": (1, 7)}), agent)
    obs, state, starts = venv.reset(), None, np.ones(2, dtype=bool)
    ended_on = None
    for t in range(25):
        actions, state = agent.predict(obs, state, episode_start=starts)
        obs, _, starts, infos = venv.step(actions)
        if starts.any():
            ended_on = np.stack([info["terminal_observation"] for info in infos])
            np.testing.assert_array_equal(state.final_obs, ended_on)  # DarkRoom episodes all end at step 20
    context = state.transitions()
    assert t == 24 and ended_on is not None
    np.testing.assert_array_equal(context["final_obs"][:, 20], ended_on)  # the next episode's first token holds it
    action, state = agent.predict(np.array([4, 4]))
    with pytest.raises(ValueError, match="next_obs=obs"):
        agent.observe(0.0, True)


def test_checkpoint_round_trip_gives_identical_actions(agent, tiny_checkpoint, tmp_path):
    reloaded = ADAgent.load(agent.save(tmp_path / "agent.pt"), seed=0)
    original = ADAgent.load(tiny_checkpoint, seed=0)
    _, log_a = play(original, 60)
    _, log_b = play(reloaded, 60)
    assert [a for _, a, _ in log_a] == [a for _, a, _ in log_b]
    assert reloaded.meta["env_id"] == "DarkRoom-v0" and "train" in reloaded.meta and "provenance" in reloaded.meta
    assert agent.save(tmp_path) == tmp_path / "checkpoint.pt"  # a folder, as load takes one
    assert ADAgent.load(tmp_path).meta["env_id"] == "DarkRoom-v0"


def test_evaluate_policy_runs_unchanged(agent):
    venv = ADContextWrapper(make_vec_env("DarkRoom-v0", n_envs=3, seed=0, env_kwargs={"goal": (6, 2)}), agent)
    mean, std = evaluate_policy(agent, venv, n_eval_episodes=6)
    assert 0.0 <= mean <= 20.0


def test_new_task_clears_the_context(agent):
    state, _ = play(agent, 30)
    agent.reset(state)
    assert state.transitions() == {} and state.cache.length == 0


@pytest.mark.parametrize(
    "observation, message",
    [(np.array([1, 2, 3]), "shape"), (np.array([[1, 2, 3]]), "shape"), (np.array([9, 0]), "outside"), (np.array([1.5, 2.0]), "outside")],
)
def test_bad_observations_are_refused(agent, observation, message):
    with pytest.raises(ValueError, match=message):
        agent.predict(observation)


def test_observation_info_pair_and_empty_batch_are_refused(agent):
    with pytest.raises(TypeError, match="pass the observation alone"):
        agent.predict((np.array([4, 4]), {}))
    with pytest.raises(ValueError, match="empty"):
        agent.predict(np.zeros((0, 2), dtype=np.int64))


def test_predict_twice_without_reward_is_refused(agent):
    _, state = agent.predict(np.array([4, 4]))
    with pytest.raises(RuntimeError, match="observe"):
        agent.predict(np.array([4, 4]), state)


@pytest.mark.parametrize(
    "reward, done, error",
    [(float("nan"), False, ValueError), (None, False, ValueError), ("one", False, TypeError), (0.0, "False", TypeError),
     (1e30, False, ValueError), (-1e7, False, ValueError)],
)
def test_bad_rewards_and_done_flags_are_refused_and_leave_the_context_intact(agent, reward, done, error):
    _, state = agent.predict(np.array([4, 4]))
    with pytest.raises(error):
        agent.observe(reward, done, state)
    agent.observe(0.0, False, state)  # the context still waits for this action's reward
    agent.predict(np.array([4, 4]), state)  # sampling fails on NaN logits: the bad reward never got in


def test_reset_between_predict_and_observe_starts_a_new_task(agent):
    _, state = agent.predict(np.array([4, 4]))
    agent.reset(state)
    agent.predict(np.array([4, 4]), state)  # no pending reward from the old task
    with pytest.raises(ValueError, match="env_indices"):
        agent.reset(state, env_indices=[5])


def test_checkpoint_for_another_env_is_refused(tiny_checkpoint):
    with pytest.raises(ValueError, match="DarkRoom-v0"):
        ADAgent.load(tiny_checkpoint, env_id="DarkRoomHard-v0")
    from stable_baselines3.common.vec_env import DummyVecEnv

    agent = ADAgent.load(tiny_checkpoint)
    with pytest.raises(ValueError, match="observations"):
        ADContextWrapper(DummyVecEnv([lambda: gym.make("DarkRoomHard-v0")]), agent)


def test_sb3_load_keywords(tiny_checkpoint):
    agent = ADAgent.load(tiny_checkpoint, env=gym.make("DarkRoom-v0"), device="cpu")
    assert agent.env_id == "DarkRoom-v0"
    with pytest.raises(ValueError, match="not DarkKeyToDoor-v0"):  # the same spaces, another task family
        ADAgent.load(tiny_checkpoint, env=gym.make("DarkKeyToDoor-v0"))
    with pytest.raises(ValueError, match="the env given has"):  # no spec to tell it by: the spaces do
        ADAgent.load(tiny_checkpoint, env=DarkRoomHardEnv())
    with pytest.raises(ValueError, match="device must be"):
        ADAgent.load(tiny_checkpoint, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="asks for a CUDA GPU, but torch sees none"):
            ADAgent.load(tiny_checkpoint, device="cuda")


def test_corrupted_checkpoint_is_refused(tiny_checkpoint, tmp_path):
    data = tiny_checkpoint.read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        ADAgent.load(broken)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ADAgent.load(tmp_path / "missing.pt")


@pytest.mark.parametrize("field, value", [("n_layer", 10**7), ("context_len", 10**9), ("n_actions", 10**8),
                                          ("max_episode_steps", 10**9), ("ffn_dim", 10**9)])
def test_a_checkpoint_claiming_a_huge_model_is_refused_before_building_it(tiny_checkpoint, tmp_path, field, value):
    meta, payload = load_checkpoint(tiny_checkpoint)
    meta["model"][field] = value
    crafted = save_checkpoint(tmp_path / "crafted.pt", meta, {"model": payload["model"]})
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="do not"):
        ADAgent.load(crafted)
    assert time.perf_counter() - start < 2


def test_a_checkpoint_whose_env_id_disagrees_with_its_model_fails_on_load(tiny_checkpoint, tmp_path):
    meta, payload = load_checkpoint(tiny_checkpoint)
    meta["env_id"] = "DarkRoomHard-v0"  # 17x17 cells; the model embeds 9x9
    crafted = save_checkpoint(tmp_path / "crafted.pt", meta, {"model": payload["model"]})
    with pytest.raises(CheckpointError, match="do not fit its env DarkRoomHard-v0"):
        ADAgent.load(crafted)


def test_checkpoint_metadata_that_is_not_a_json_object_is_refused(tiny_checkpoint, tmp_path):
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["meta"] = json.dumps([1, 2])
    torch.save(payload, tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="metadata is a JSON list, expected an object"):
        ADAgent.load(tmp_path / "list.pt")


def test_the_shape_check_agrees_with_the_pixel_encoder():
    from ad_gym.models.transformer import check_weights_fit, pixel_convs

    for height, width in [(36, 36), (40, 28), (16, 20)]:
        config = ADConfig(obs_nvec=(), n_actions=4, max_episode_steps=50, image_shape=(height, width, 3))
        check_weights_fit(config, ADTransformer(config).state_dict())  # a real model always fits its config
        assert pixel_convs(3, height, width)[1] > 0


def test_an_empty_checkpoint_file_gets_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a loadable ad-gym checkpoint"):
        ADAgent.load(tmp_path / "checkpoint.pt")


def test_the_plain_sb3_idiom_warns_that_it_drops_the_context(agent):
    env = gym.make("DarkRoom-v0", goal=(0, 5))
    obs, _ = env.reset(seed=0)
    action, _ = agent.predict(obs)  # the first call has nothing to drop
    obs, reward, terminated, truncated, _ = env.step(action)
    agent.observe(reward, terminated or truncated)
    with pytest.warns(ContextDroppedWarning, match="pass back the state"):
        agent.predict(obs)


def test_the_stateful_loop_a_deliberate_reset_and_sb3_evaluation_never_warn(agent):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContextDroppedWarning)
        play(agent, 45)
        agent.reset()  # a new task, on purpose
        play(agent, 5)
        venv = ADContextWrapper(make_vec_env("DarkRoom-v0", n_envs=2, env_kwargs={"goal": (1, 7)}), agent)
        for _ in range(2):  # evaluate_policy passes its states back; each call resets the VecEnv and so the context
            evaluate_policy(agent, venv, n_eval_episodes=2, deterministic=False)
