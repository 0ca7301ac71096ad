"""Dark Room and Dark Room Hard, held against the paper's rules through their registered ids."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ad_gym  # noqa: F401  (registers the envs)

ENVS = {"DarkRoom-v0": (9, (4, 4), False), "DarkRoomHard-v0": (17, (8, 8), True)}  # size, start, reward once
MOVES = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1), 4: (0, 0)}  # left, right, up, down, no-op


def reference_rollout(size, start, goal, reward_once, actions):
    """The paper's rules, written independently of the env: positions and rewards per step."""
    x, y = start
    reached, out = False, []
    for t, a in enumerate(actions):
        if t % 20 == 0:  # a new episode starts at the centre
            (x, y), reached = start, False
        dx, dy = MOVES[a]
        x, y = min(max(x + dx, 0), size - 1), min(max(y + dy, 0), size - 1)
        on_goal = (x, y) == goal
        reward = float(on_goal and not (reward_once and reached))
        reached |= on_goal
        out.append(((x, y), reward, (t + 1) % 20 == 0))
    return out


@pytest.mark.parametrize("env_id", ["DarkRoom-v0", "ad_gym/DarkRoom-v0", "DarkRoomHard-v0", "ad_gym/DarkRoomHard-v0"])
def test_random_rollouts_follow_the_rules(env_id):
    size, start, reward_once = ENVS[env_id.split("/")[-1]]
    rng = np.random.default_rng(0)
    for goal in [(0, 0), start, (size - 1, 2), tuple(int(v) for v in rng.integers(size, size=2))]:
        env = gym.make(env_id, goal=goal)
        obs, _ = env.reset(seed=1)
        assert env.observation_space == gym.spaces.MultiDiscrete([size, size]) and tuple(obs) == start
        actions = [int(rng.integers(5)) for _ in range(3000)]
        for t, (a, (position, reward, episode_end)) in enumerate(zip(actions, reference_rollout(size, start, goal, reward_once, actions))):
            obs, r, terminated, truncated, _ = env.step(a)
            assert tuple(obs) == position and r == reward, f"step {t}"
            assert not terminated and truncated == episode_end
            if truncated:
                obs, _ = env.reset()
                assert tuple(obs) == start and env.unwrapped.goal == goal  # plain reset keeps the task


@pytest.mark.parametrize("env_id", ENVS)
def test_each_action_and_the_walls(env_id):
    size, start, _ = ENVS[env_id]
    env = gym.make(env_id, goal=(0, 0))
    env.reset(seed=0)
    for action, (dx, dy) in MOVES.items():
        env.reset()
        obs, *_ = env.step(action)
        assert tuple(obs) == (start[0] + dx, start[1] + dy)
    for action, steps in ((0, size), (2, size)):  # walk into the left then the top wall: stay at 0
        env.reset()
        for _ in range(steps):
            obs, *_ = env.step(action)
    assert tuple(obs) == (start[0], 0)
    env.reset()
    for _ in range(size):
        obs, *_ = env.step(1)
    for _ in range(size):
        obs, *_ = env.step(3)
    assert tuple(obs) == (size - 1, size - 1)  # right and bottom walls


def test_dark_room_pays_every_step_on_the_goal_and_hard_only_once():
    for env_id, expected in (("DarkRoom-v0", [1, 1, 1, 0, 1]), ("DarkRoomHard-v0", [1, 0, 0, 0, 0])):
        start = ENVS[env_id][1]
        env = gym.make(env_id, goal=(start[0] + 1, start[1]))
        env.reset(seed=0)
        rewards = [env.step(a)[1] for a in (1, 4, 4, 0, 1)]  # arrive, stay, stay, leave, come back
        assert rewards == expected, env_id


def test_optimal_returns():
    assert gym.make("DarkRoom-v0", goal=(4, 4)).unwrapped.optimal_return() == 20
    assert gym.make("DarkRoom-v0", goal=(0, 0)).unwrapped.optimal_return() == 13
    assert gym.make("DarkRoomHard-v0", goal=(0, 16)).unwrapped.optimal_return() == 1
    mean = np.mean([gym.make("DarkRoom-v0", **t).unwrapped.optimal_return() for t in ad_gym.tasks("DarkRoom-v0", "all")])
    assert mean == pytest.approx(16.54, abs=0.01)  # the paper's ~16.5


@pytest.mark.parametrize("env_id", ENVS)
def test_goal_from_make_options_or_seed(env_id):
    env = gym.make(env_id)
    env.reset(seed=3)
    drawn = env.unwrapped.goal
    env.reset()
    assert env.unwrapped.goal == drawn  # plain reset keeps it
    env.reset(seed=3)
    assert env.unwrapped.goal == drawn  # same seed, same task
    env.reset(options={"goal": (1, 2)})
    assert env.unwrapped.goal == (1, 2)
    env.reset(seed=99)
    assert env.unwrapped.goal == (1, 2)  # an explicit goal survives seeded resets
    fixed = gym.make(env_id, goal=(2, 1))
    fixed.reset(seed=5)
    assert fixed.unwrapped.goal == (2, 1)
    seeds_differ = {tuple(_goal_after_seed(env_id, s)) for s in range(20)}
    assert len(seeds_differ) > 5  # seeds really draw different tasks


def _goal_after_seed(env_id, seed):
    env = gym.make(env_id)
    env.reset(seed=seed)
    return env.unwrapped.goal


@pytest.mark.parametrize("env_id", ENVS)
def test_seeding_gives_identical_rollouts(env_id):
    def rollout(seed):
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        trace = [tuple(obs)]
        for _ in range(200):
            obs, r, term, trunc, _ = env.step(env.action_space.sample())
            trace.append((tuple(obs), r, trunc))
            if trunc:
                env.reset()
        return env.unwrapped.goal, trace

    assert rollout(7) == rollout(7)
    assert rollout(7) != rollout(8)


@pytest.mark.parametrize("env_id", ENVS)
def test_gymnasium_and_sb3_checkers_pass_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(gym.make(env_id).unwrapped)
        sb3_check_env(gym.make(env_id).unwrapped, warn=True)


@pytest.mark.parametrize("env_id", ENVS)
def test_render_modes(env_id):
    size, start, _ = ENVS[env_id]
    text_env = gym.make(env_id, goal=(0, 0), render_mode="ansi")
    text_env.reset(seed=0)
    text = text_env.render()
    rows = text.strip().split("\n")
    assert len(rows) == size and rows[start[1]].split()[start[0]] == "A" and rows[0].split()[0] == "G"
    image_env = gym.make(env_id, goal=(0, 0), render_mode="rgb_array")
    image_env.reset(seed=0)
    image = image_env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.shape[0] == image.shape[1]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"goal": (9, 0)}, ValueError, "outside the 9x9 grid"),
        ({"goal": (-1, 3)}, ValueError, "outside"),
        ({"goal": (1.5, 2)}, TypeError, "pair of integers"),
        ({"goal": (1, 2, 3)}, TypeError, "pair of integers"),
        ({"render_mode": "video"}, ValueError, "render_mode"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*render_mode:UserWarning")
def test_bad_construction_is_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        gym.make("DarkRoom-v0", **kwargs)


def test_bad_reset_and_step_are_refused():
    env = gym.make("DarkRoom-v0").unwrapped
    with pytest.raises(ValueError, match="outside"):
        env.reset(options={"goal": (3, 20)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"key": (1, 1)})
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(5)
