"""Watermaze on MiniGrid: the rules, the pixels, the hidden platform, the split."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ad_gym

ENV_IDS = ["Watermaze-v0", "ad_gym/Watermaze-v0", "Watermaze-v1"]
VERSIONS = ["Watermaze-v0", "Watermaze-v1"]
# MiniGrid headings: 0 right (+x), 1 down (+y), 2 left (-x), 3 up (-y).
HEADINGS = {0: (1, 0), 1: (0, 1), 2: (-1, 0), 3: (0, -1)}


def expected_pose(pose, action, compass=False, size=11):
    """The rules written out. v0: turn left/right changes the heading, forward moves unless a wall.
    v1: face the compass direction numbered like the headings, then move unless a wall."""
    x, y, d = pose
    if compass:
        d = action
    elif action == 0:
        return x, y, (d - 1) % 4
    elif action == 1:
        return x, y, (d + 1) % 4
    dx, dy = HEADINGS[d]
    nx, ny = x + dx, y + dy
    return (nx, ny, d) if 1 <= nx <= size - 2 and 1 <= ny <= size - 2 else (x, y, d)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces_start_and_pixels(env_id):
    env = gym.make(env_id, platform=(2, 3))
    assert env.action_space == gym.spaces.Discrete(4 if env_id.endswith("v1") else 3)
    assert env.observation_space.shape == (36, 36, 3) and env.observation_space.dtype == np.uint8
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (36, 36, 3)
    assert tuple(env.unwrapped.agent_pos) == (5, 5) and env.unwrapped.agent_dir == 3


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_long_random_rollout_follows_the_rules(env_id):
    compass = env_id.endswith("v1")
    rng = np.random.default_rng(0)
    for task in ad_gym.tasks(env_id, "train")[:3] + [{"platform": (5, 3)}]:
        env = gym.make(env_id, **task)
        env.reset(seed=int(rng.integers(100)))
        pose, t, successes = (5, 5, 3), 0, 0
        for _ in range(2000):
            action = int(rng.integers(env.action_space.n))
            obs, reward, terminated, truncated, _ = env.step(action)
            pose, t = expected_pose(pose, action, compass), t + 1
            on_platform = pose[:2] == task["platform"]
            assert (int(env.unwrapped.agent_pos[0]), int(env.unwrapped.agent_pos[1]), env.unwrapped.agent_dir) == pose
            assert reward == float(on_platform) and terminated == on_platform
            assert truncated == (t == 50 and not on_platform)
            if terminated or truncated:
                successes += terminated
                env.reset()
                pose, t = (5, 5, 3), 0
        assert successes > 0 or task["platform"] != (5, 3)


def test_the_platform_is_never_rendered():
    # Same pose, different platforms: identical observations and identical top-down renders.
    a = gym.make("Watermaze-v0", platform=(5, 4), render_mode="rgb_array")
    b = gym.make("Watermaze-v0", platform=(8, 8), render_mode="rgb_array")
    obs_a, _ = a.reset(seed=0)
    obs_b, _ = b.reset(seed=0)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(a.render(), b.render())
    obs_a, reward, terminated, *_ = a.step(2)  # forward onto (5, 4): found
    obs_b, *_ = b.step(2)
    assert reward == 1.0 and terminated
    np.testing.assert_array_equal(obs_a, obs_b)


def test_views_tell_poses_apart():
    env = gym.make("Watermaze-v0", platform=(1, 1))
    env.reset(seed=0)
    views = {}
    for x in range(1, 10):
        for y in range(1, 10):
            for d in range(4):
                env.unwrapped.agent_pos, env.unwrapped.agent_dir = (x, y), d
                views[(x, y, d)] = env.unwrapped.gen_obs().tobytes()
    assert len(set(views.values())) > 0.8 * len(views)  # most of the 324 poses look unique


def test_task_persists_and_changes_with_options():
    env = gym.make("Watermaze-v0")
    env.reset(seed=2)
    task = env.unwrapped.task
    env.reset()
    assert env.unwrapped.task == task
    env.reset(options={"platform": (1, 9)})
    env.reset(seed=5)
    assert env.unwrapped.task == {"platform": (1, 9)}


def test_same_seed_same_rollout():
    def rollout(seed):
        env = gym.make("Watermaze-v0")
        obs, _ = env.reset(seed=seed)
        out = [env.unwrapped.platform]
        for a in np.random.default_rng(0).integers(3, size=120):
            obs, r, te, tr, _ = env.step(int(a))
            out.append((obs.sum(), r))
            if te or tr:
                env.reset()
        return out

    assert rollout(1) == rollout(1)
    assert any(rollout(seed)[0] != rollout(1)[0] for seed in range(2, 6))  # seeds draw different platforms


@pytest.mark.parametrize("env_id", VERSIONS)
def test_checkers_pass_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # gym.make's note that v0 has a newer version is not a problem of the env.
        warnings.filterwarnings("ignore", message=".*Watermaze-v0 is out of date", category=DeprecationWarning)
        check_env(gym.make(env_id).unwrapped)
        sb3_check_env(gym.make(env_id).unwrapped, warn=True)


@pytest.mark.parametrize("env_id", VERSIONS)
def test_split_and_oracle(env_id):
    train, test = ad_gym.tasks(env_id, "train"), ad_gym.tasks(env_id, "test")
    assert len(train) + len(test) == 80 and len(test) == 16
    assert not {t["platform"] for t in train} & {t["platform"] for t in test}
    assert test == ad_gym.tasks("Watermaze-v0", "test")  # both versions share the split
    from ad_gym.agents import oracle_for
    from ad_gym.evaluation import play_episodes

    returns = play_episodes(lambda rows: oracle_for(env_id, rows), env_id, test, 3)
    assert (returns == 1.0).all()


def test_play_episodes_shows_each_step_before_the_reset():
    from ad_gym.agents import oracle_for
    from ad_gym.envs.watermaze import watermaze_plan
    from ad_gym.evaluation import play_episodes

    test = ad_gym.tasks("Watermaze-v1", "test")[:3]
    seen = []  # (row, episode, agent cell, reward, done)
    play_episodes(lambda rows: oracle_for("Watermaze-v1", rows), "Watermaze-v1", test, 2, seeds=[0, 1],
                  on_step=lambda row, episode, env, r, done: seen.append((row, episode, tuple(env.unwrapped.agent_pos), r, done)))
    for row, task in enumerate(t for t in test for _ in range(2)):
        for episode in range(2):
            steps = [s for s in seen if s[:2] == (row, episode)]
            assert len(steps) == len(watermaze_plan(task["platform"], moves="compass"))
            assert [s[4] for s in steps] == [False] * (len(steps) - 1) + [True]
            assert steps[-1][2:4] == (task["platform"], 1.0)  # on the platform, not yet reset


@pytest.mark.parametrize("env_id", VERSIONS)
def test_oracle_takes_the_fewest_steps(env_id):
    from ad_gym.agents import oracle_for

    for task in ad_gym.tasks(env_id, "all"):
        env, oracle = gym.make(env_id, **task), oracle_for(env_id, [task])
        obs, _ = env.reset(seed=0)
        for steps in range(1, 51):
            action, _ = oracle.predict(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            oracle.observe([reward], [terminated or truncated])
            if terminated or truncated:
                break
        assert terminated and steps == env.unwrapped.optimal_steps()


def test_v1_moves_are_compass_moves():
    env = gym.make("Watermaze-v1", platform=(1, 1))
    env.reset(seed=0)
    for action, pose in ((0, (6, 5, 0)), (1, (6, 6, 1)), (2, (5, 6, 2)), (3, (5, 5, 3)), (3, (5, 4, 3))):
        env.step(action)
        assert (*map(int, env.unwrapped.agent_pos), env.unwrapped.agent_dir) == pose
    with pytest.raises(ValueError, match="0 \\(east\\), 1 \\(south\\), 2 \\(west\\) or 3 \\(north\\)"):
        env.step(4)
    with pytest.raises(ValueError, match="moves must be one of"):
        gym.make("Watermaze-v0", moves="diagonal")


@pytest.mark.parametrize(
    "platform, error, match",
    [((0, 3), ValueError, "outside the arena"), ((3, 10), ValueError, "outside"), ((5, 5), ValueError, "start cell"),
     ("ab", TypeError, "pair of integers")],
)
def test_bad_platforms_are_refused(platform, error, match):
    with pytest.raises(error, match=match):
        gym.make("Watermaze-v0", platform=platform)
