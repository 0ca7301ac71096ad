"""Bad input to the envs and the task lists fails at once, with an error that names the problem."""

import gymnasium as gym
import numpy as np
import pytest

import ad_gym

SIZES = {"DarkRoom-v0": 9, "DarkRoomHard-v0": 17}


def outside_goals(size):
    return [(size, 0), (0, size), (-1, 3), (3, -1), (size + 5, size + 5)]


@pytest.mark.parametrize("env_id, size", SIZES.items())
def test_goal_outside_the_grid_is_a_value_error_naming_the_grid(env_id, size):
    for goal in outside_goals(size):
        with pytest.raises(ValueError, match=f"outside the {size}x{size} grid"):
            gym.make(env_id, goal=goal)
        env = gym.make(env_id)
        with pytest.raises(ValueError, match=f"outside the {size}x{size} grid"):
            env.reset(options={"goal": goal})


NON_INTEGER_GOALS = [(1.5, 2), (1.0, 2.0), (1, 2, 3), (1,), 5, "ab", ("1", "2"), [[1, 2]]]


@pytest.mark.parametrize("goal", NON_INTEGER_GOALS, ids=repr)
@pytest.mark.parametrize("env_id", SIZES)
def test_non_integer_goal_is_a_type_error(env_id, goal):
    with pytest.raises(TypeError, match="pair of integers"):
        gym.make(env_id, goal=goal)
    env = gym.make(env_id)
    with pytest.raises(TypeError, match="pair of integers"):
        env.reset(options={"goal": goal})


@pytest.mark.parametrize("goal", [(1, 2), [1, 2], np.array([1, 2]), (np.int64(1), np.uint8(2))], ids=repr)
def test_any_integer_pair_is_a_goal(goal):
    assert gym.make("DarkRoom-v0", goal=goal).unwrapped.goal == (1, 2)


@pytest.mark.parametrize("env_id", SIZES)
def test_unknown_split_lists_the_allowed_ones(env_id):
    with pytest.raises(ValueError, match=r"unknown split 'val'.*\['train', 'test', 'all'\]"):
        ad_gym.tasks(env_id, "val")


@pytest.mark.parametrize("bad_id", ["DarkRom-v0", "DarkRoom-v1", "ad_gym/Nope-v0", "CartPole-v1"])
def test_unknown_env_id_in_tasks_lists_the_known_ids(bad_id):
    with pytest.raises(ValueError, match="unknown env id") as error:
        ad_gym.tasks(bad_id, "train")
    assert repr(bad_id) in str(error.value)
    assert "DarkRoom-v0" in str(error.value) and "DarkRoomHard-v0" in str(error.value)


def test_env_id_that_is_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="env_id must be a string"):
        ad_gym.tasks(None, "train")


@pytest.mark.parametrize("env_id", SIZES)
def test_unknown_reset_option_is_a_value_error(env_id):
    env = gym.make(env_id)
    with pytest.raises(ValueError, match=r"unknown reset options \['target'\]"):
        env.reset(options={"target": (1, 1)})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"goal": (1, 1), "size": 5})


@pytest.mark.parametrize("action", [5, -1, 1.5, "left", None, np.array([1, 2]), np.float32(2.0)], ids=repr)
@pytest.mark.parametrize("env_id", SIZES)
def test_invalid_action_is_a_value_error(env_id, action):
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must be an integer in \[0, 4\]"):
        env.step(action)


@pytest.mark.parametrize("action", [0, 4, np.int64(3), np.array(2)], ids=repr)
def test_integer_actions_of_any_kind_are_accepted(action):
    env = gym.make("DarkRoom-v0")
    env.reset(seed=0)
    env.step(action)


@pytest.mark.filterwarnings("ignore:.*render_mode:UserWarning")  # gym.make warns before the env refuses
@pytest.mark.parametrize(
    "kwargs, message",
    [({"render_mode": "video"}, "render_mode"), ({"size": 1}, "size"), ({"max_steps": 0}, "max_steps")],
)
def test_bad_constructor_arguments_are_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("DarkRoom-v0", **kwargs)


def test_stepping_or_asking_the_optimum_before_the_first_reset():
    env = gym.make("DarkRoom-v0").unwrapped  # unwrapped: no OrderEnforcing wrapper to catch it first
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(RuntimeError, match="reset"):
        env.optimal_return()
