"""Adversarial Bandit: env rules, the three task conditions, and the UCB source."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ad_gym
from ad_gym.agents import RandomAgent, UCBAgent, oracle_for
from ad_gym.envs.adversarial_bandit import sample_means
from ad_gym.evaluation import play_episodes
from ad_gym.sources.collect import collect
from ad_gym.sources.sb3 import SourceConfig, learn_task

ENV_ID = "AdversarialBandit-v0"


@pytest.mark.parametrize("env_id", [ENV_ID, f"ad_gym/{ENV_ID}"])
def test_spaces_horizon_and_constant_observation(env_id):
    env = gym.make(env_id, means=(0.5,) * 10)
    assert env.action_space == gym.spaces.Discrete(10) and env.observation_space == gym.spaces.MultiDiscrete([1])
    obs, _ = env.reset(seed=0)
    for t in range(1, 101):
        obs, reward, terminated, truncated, _ = env.step(t % 10)
        assert obs.tolist() == [0] and reward in (0.0, 1.0) and not terminated and truncated == (t == 100)


def test_rewards_are_bernoulli_with_the_arms_probabilities():
    means = (0.0, 1.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9)
    env = gym.make(ENV_ID, means=means)
    env.reset(seed=1)
    pulls = {arm: [] for arm in (0, 1, 2, 9)}
    for i in range(4000):
        arm = (0, 1, 2, 9)[i % 4]
        pulls[arm].append(env.step(arm)[1])
        if (i + 1) % 100 == 0:
            env.reset()
    assert np.mean(pulls[0]) == 0.0 and np.mean(pulls[1]) == 1.0
    assert abs(np.mean(pulls[2]) - 0.3) < 0.05 and abs(np.mean(pulls[9]) - 0.9) < 0.04


def test_task_persists_across_plain_resets_and_seeded_draws_follow_the_condition():
    env = gym.make(ENV_ID, condition="even")
    env.reset(seed=0)
    task = env.unwrapped.task
    env.reset()
    assert env.unwrapped.task == task
    best = [int(np.argmax(env.reset(seed=s) and env.unwrapped.means)) for s in range(400)]
    assert np.mean(np.array(best) % 2 == 0) > 0.9


@pytest.mark.parametrize("condition, odd_share", [("odd", 0.95), ("even", 0.05), ("uniform", 0.5)])
def test_conditions_put_the_best_arm_where_documented(condition, odd_share):
    rng = np.random.default_rng(0)
    draws = [sample_means(rng, condition) for _ in range(4000)]
    best = np.array([np.argmax(m) for m in draws])
    assert abs(np.mean(best % 2 == 1) - odd_share) < 0.03
    means = np.array(draws)
    assert (means.max(axis=1) >= 0.5).all() and (np.sort(means, axis=1)[:, -2] <= 0.5).all()


def test_splits_are_fixed_disjoint_and_follow_their_conditions():
    names = ad_gym.envs.family(ENV_ID).split_names
    assert {"train", "test", "even", "uniform"} <= set(names)
    splits = {s: ad_gym.tasks(ENV_ID, s) for s in ("train", "test", "even", "uniform")}
    assert [len(splits[s]) for s in splits] == [1000, 100, 100, 100]
    keys = {s: {ad_gym.envs.task_key(t) for t in ts} for s, ts in splits.items()}
    assert not keys["train"] & (keys["test"] | keys["even"] | keys["uniform"])
    odd_share = {s: np.mean([np.argmax(t["means"]) % 2 == 1 for t in ts]) for s, ts in splits.items()}
    assert odd_share["train"] > 0.9 and odd_share["test"] > 0.85 and odd_share["even"] < 0.15
    assert splits == {s: ad_gym.tasks(ENV_ID, s) for s in splits}  # fixed


def test_same_seed_same_rewards():
    def rollout(seed):
        env = gym.make(ENV_ID)
        env.reset(seed=seed)
        return [env.unwrapped.means] + [env.step(i % 10)[1] for i in range(100)]

    assert rollout(3) == rollout(3) and rollout(3) != rollout(4)


def test_checkers_and_render():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ENV_ID).unwrapped)
        sb3_check_env(gym.make(ENV_ID).unwrapped, warn=True)
    env = gym.make(ENV_ID, means=(0.1,) * 9 + (0.9,), render_mode="ansi")
    env.reset(seed=0)
    env.step(9)
    assert "arm 9: p=0.900 pulls=  1" in env.render()
    env = gym.make(ENV_ID, means=(0.1,) * 10, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.render().shape == (64, 160, 3)


def test_ucb_beats_random_and_the_oracle_beats_ucb():
    tasks = ad_gym.tasks(ENV_ID, "test")[:30]
    space = gym.make(ENV_ID).action_space
    ucb = play_episodes(lambda rows: UCBAgent(space), ENV_ID, tasks, 3)
    random = play_episodes(lambda rows: RandomAgent(space, seed=0), ENV_ID, tasks, 3)
    oracle = play_episodes(lambda rows: oracle_for(ENV_ID, rows), ENV_ID, tasks, 3)
    assert random.mean() + 5 < ucb.mean() < oracle.mean()
    assert ucb[:, 2].mean() > ucb[:, 0].mean()  # UCB keeps learning across episodes of one task


def test_ucb_tries_every_arm_once_first():
    agent = UCBAgent(gym.spaces.Discrete(10))
    seen = []
    for _ in range(10):
        action, _ = agent.predict(np.zeros(1, dtype=np.int64))
        agent.observe(0.0)
        seen.append(int(action))
    assert seen == list(range(10))


def test_ucb_source_history_records_every_pull(tmp_path):
    task = ad_gym.tasks(ENV_ID, "train")[0]
    history = learn_task(ENV_ID, task, SourceConfig(algo="ucb", n_streams=3, total_steps=600))
    assert history.actions.shape == (3, 200) and history.dones.sum() == 3 * 2
    assert history.metadata["source"]["algo"] == "ucb"
    # Each stream is its own UCB: its first ten pulls are the ten arms in order.
    assert (history.actions[:, :10] == np.arange(10)).all()
    # Re-derive the UCB choice at step 50 of stream 0 from the recorded pulls and rewards.
    acts, rews = history.actions[0], history.rewards[0]
    pulls = np.bincount(acts[:50], minlength=10)
    totals = np.bincount(acts[:50], weights=rews[:50], minlength=10)
    assert acts[50] == np.argmax(totals / pulls + np.sqrt(2 * np.log(50) / pulls))
    collect(ENV_ID, tmp_path, split="even", config=SourceConfig(algo="ucb", n_streams=2, total_steps=400),
            max_tasks=2, workers=1, progress=False)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_sb3_source_runs_on_the_bandit_and_ucb_is_refused_elsewhere():
    task = ad_gym.tasks(ENV_ID, "train")[0]
    history = learn_task(ENV_ID, task, SourceConfig(algo="a2c", n_streams=2, total_steps=400))
    assert history.rewards.shape == (2, 200)
    with pytest.raises(ValueError, match="UCB ignores observations"):
        collect("DarkRoom-v0", "unused", config=SourceConfig(algo="ucb"), progress=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"means": (0.5,) * 9}, ValueError, "10 reward probabilities"),
        ({"means": (1.5,) + (0.5,) * 9}, ValueError, r"probabilities in \[0, 1\]"),
        ({"condition": "odd-ish"}, ValueError, "unknown condition 'odd-ish'"),
    ],
)
def test_bad_input_is_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make(ENV_ID, **kwargs)
    with pytest.raises(ValueError, match="unknown split 'odd'"):
        ad_gym.tasks(ENV_ID, "odd")
