"""Dark Key-to-Door against its rules, written here independently of the env's code."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ad_gym
from ad_gym.agents import oracle_for
from ad_gym.envs import KeyFlagObservation
from ad_gym.evaluation import play_episodes
from tests.rules import MOVES

ENV_IDS = ["DarkKeyToDoor-v0", "ad_gym/DarkKeyToDoor-v0", "DarkKeyToDoor-v1"]
SIZE, HORIZON = 9, 50


def move(cell, action):
    dx, dy = MOVES[int(action)]
    return min(max(cell[0] + dx, 0), SIZE - 1), min(max(cell[1] + dy, 0), SIZE - 1)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_spaces(env_id):
    env = gym.make(env_id)
    assert env.observation_space == gym.spaces.MultiDiscrete([9, 9])
    assert env.action_space == gym.spaces.Discrete(5)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("terminate_on_door", [True, False])
def test_long_random_rollout_follows_the_rules(env_id, terminate_on_door):
    rng = np.random.default_rng(0)
    opened_in_all = 0
    for task in ad_gym.tasks(env_id, "train")[:5] + [{"key": (4, 4), "door": (4, 4)}]:
        env = gym.make(env_id, **task, terminate_on_door=terminate_on_door)
        obs, _ = env.reset(seed=int(rng.integers(1000)))
        cell, has_key, is_open, t, episodes = tuple(obs), False, False, 0, 0
        for _ in range(3000):
            action = int(rng.integers(5))
            obs, reward, terminated, truncated, _ = env.step(action)
            cell, t = move(cell, action), t + 1
            expected = 0.0
            if has_key and not is_open and cell == task["door"]:
                expected, is_open = 1.0, True
                opened_in_all += 1
            elif not has_key and cell == task["key"]:
                expected, has_key = 1.0, True
            ends_here = is_open and terminate_on_door
            assert tuple(obs) == cell and reward == expected
            assert terminated == ends_here and truncated == (t == HORIZON and not ends_here)
            if terminated or truncated:
                obs, _ = env.reset()
                cell, has_key, is_open, t, episodes = tuple(obs), False, False, 0, episodes + 1
        assert episodes >= 3000 // HORIZON
    assert opened_in_all > 0  # the door rule was exercised


def test_without_termination_the_agent_stands_on_the_open_door_for_nothing():
    env = gym.make("DarkKeyToDoor-v0", key=(3, 3), door=(5, 3), terminate_on_door=False)
    env.reset(seed=0)
    env.unwrapped.agent = (2, 3)
    assert env.step(1)[1:4] == (1.0, False, False)  # the key
    assert env.step(1)[1:4] == (0.0, False, False)
    obs, reward, terminated, truncated, _ = env.step(1)
    assert tuple(obs) == (5, 3) and (reward, terminated, truncated) == (1.0, False, False)  # the door opens
    for _ in range(3):
        assert env.step(4)[1:4] == (0.0, False, False)  # standing on the open door pays nothing more
    with pytest.raises(TypeError, match="terminate_on_door must be a bool"):
        gym.make("DarkKeyToDoor-v0", terminate_on_door="no")


def test_starting_on_the_key_does_not_pick_it_up():
    env = gym.make("DarkKeyToDoor-v0", key=(2, 2), door=(6, 6))
    for seed in range(200):  # find a start on the key
        obs, _ = env.reset(seed=seed)
        if tuple(obs) == (2, 2):
            break
    else:
        pytest.skip("no seed started on the key")
    assert env.step(4)[1] == 1.0  # the no-op ends a step on the key: picked up now
    assert env.step(4)[1] == 0.0


def test_key_and_door_on_one_cell_need_two_steps_there():
    env = gym.make("DarkKeyToDoor-v0", key=(3, 3), door=(3, 3))
    env.reset(seed=0)
    env.unwrapped.agent = (2, 3)
    assert env.step(1)[1:3] == (1.0, False)  # right onto the cell: the key
    assert env.step(4)[1:3] == (1.0, True)  # stay: the door opens, the episode ends


def test_door_before_key_pays_nothing():
    env = gym.make("DarkKeyToDoor-v0", key=(0, 0), door=(5, 3))
    env.reset(seed=0)
    env.unwrapped.agent = (4, 3)
    assert env.step(1)[1:3] == (0.0, False)
    with pytest.raises(RuntimeError, match="door is open"):
        env.unwrapped.door_open = True
        env.step(0)


def test_task_persists_across_plain_resets_and_changes_with_options():
    env = gym.make("DarkKeyToDoor-v0")
    env.reset(seed=3)
    task = env.unwrapped.task
    starts = set()
    for _ in range(20):
        obs, _ = env.reset()
        starts.add(tuple(obs))
        assert env.unwrapped.task == task
    assert len(starts) > 5  # a random start every episode
    env.reset(options={"key": (1, 2), "door": (3, 4)})
    env.reset(seed=9)
    assert env.unwrapped.task == {"key": (1, 2), "door": (3, 4)}


def test_same_seed_gives_identical_rollouts():
    def rollout(seed):
        env = gym.make("DarkKeyToDoor-v0")
        out = [tuple(env.reset(seed=seed)[0]), env.unwrapped.task["key"]]
        for a in np.random.default_rng(1).integers(5, size=200):
            obs, r, term, trunc, _ = env.step(int(a))
            out.append((tuple(obs), r))
            if term or trunc:
                out.append(tuple(env.reset()[0]))
        return out

    assert rollout(4) == rollout(4) and rollout(4) != rollout(5)


@pytest.mark.parametrize("env_id", ["DarkKeyToDoor-v1", "DarkKeyToDoor-v0"])
def test_checkers_pass_without_warnings(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Gymnasium's one warning for v0 is that v1 exists; nothing else may warn.
        warnings.filterwarnings("ignore", message=".*DarkKeyToDoor-v0 is out of date", category=DeprecationWarning)
        check_env(gym.make(env_id).unwrapped)
        sb3_check_env(gym.make(env_id).unwrapped, warn=True)
        sb3_check_env(KeyFlagObservation(gym.make(env_id)), warn=True)  # what source learners see


def test_v1_is_v0_without_termination_on_the_same_tasks():
    v0, v1 = gym.make("DarkKeyToDoor-v0").unwrapped, gym.make("DarkKeyToDoor-v1").unwrapped
    assert v0.terminate_on_door and not v1.terminate_on_door
    for split in ("train", "test"):
        assert ad_gym.tasks("DarkKeyToDoor-v1", split) == ad_gym.tasks("DarkKeyToDoor-v0", split)


def test_render():
    env = gym.make("DarkKeyToDoor-v0", key=(1, 1), door=(7, 7), render_mode="ansi")
    env.reset(seed=0)
    env.unwrapped.agent = (0, 0)
    rows = env.render().splitlines()
    assert rows[0].split()[0] == "A" and rows[1].split()[1] == "K" and rows[7].split()[7] == "D"
    image = gym.make("DarkKeyToDoor-v0", key=(1, 1), door=(7, 7), render_mode="rgb_array")
    image.reset(seed=0)
    assert image.render().shape == (144, 144, 3)


def test_split_is_disjoint_covers_every_pair_and_every_cell_trains_as_key_and_door():
    train, test = (ad_gym.tasks("DarkKeyToDoor-v0", s) for s in ("train", "test"))
    key = lambda t: (t["key"], t["door"])  # noqa: E731
    assert len(train) + len(test) == 6561 and not {key(t) for t in train} & {key(t) for t in test}
    cells = {(x, y) for x in range(9) for y in range(9)}
    assert {t["key"] for t in train} == cells and {t["door"] for t in train} == cells
    # The fixed order is shuffled: the first tasks of a split are spread over the room.
    assert len({t["key"] for t in train[:20]}) > 12


def test_key_flag_wrapper_adds_the_flag_and_histories_strip_it():
    env = KeyFlagObservation(gym.make("DarkKeyToDoor-v0", key=(3, 3), door=(5, 5)))
    obs, _ = env.reset(seed=0)
    env.unwrapped.agent = (2, 3)
    assert obs[2] == 0
    obs, reward, *_ = env.step(1)
    assert tuple(obs) == (3, 3, 1) and reward == 1.0
    assert KeyFlagObservation.history_observation(np.array([[3, 3, 1]])).tolist() == [[3, 3]]


def test_oracle_earns_two_on_every_episode():
    tasks = ad_gym.tasks("DarkKeyToDoor-v0", "test")[:10]
    returns = play_episodes(lambda rows: oracle_for("DarkKeyToDoor-v0", rows), "DarkKeyToDoor-v0", tasks, 5)
    assert (returns == 2.0).all()
    env = gym.make("DarkKeyToDoor-v0", **tasks[0])
    env.reset(seed=0)
    assert env.unwrapped.optimal_return() == 2.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"key": (9, 0), "door": (1, 1)}, ValueError, "key .* outside the 9x9 grid"),
        ({"key": (1, 1), "door": (-1, 0)}, ValueError, "door .* outside"),
        ({"key": (1, 1)}, ValueError, "both key and door"),
        ({"key": "ab", "door": (1, 1)}, TypeError, "pair of integers"),
    ],
)
def test_bad_tasks_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        gym.make("DarkKeyToDoor-v0", **kwargs)
