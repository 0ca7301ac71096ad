"""The fixed task splits."""

import gymnasium as gym
import pytest

import ad_gym


@pytest.mark.parametrize("env_id, size, n_test", [("DarkRoom-v0", 9, 16), ("DarkRoomHard-v0", 17, 58)])
def test_splits_are_disjoint_and_cover_every_goal(env_id, size, n_test):
    train, test, every = (ad_gym.tasks(env_id, split) for split in ("train", "test", "all"))
    goals = lambda tasks: {t["goal"] for t in tasks}  # noqa: E731
    assert len(test) == n_test and not goals(train) & goals(test)
    assert goals(train) | goals(test) == goals(every) == {(x, y) for x in range(size) for y in range(size)}
    assert ad_gym.tasks(f"ad_gym/{env_id}", "test") == test


def test_split_is_fixed_and_documented():
    # The rule in the README: held out where (x + 2y) % 5 == 0.
    assert all((x + 2 * y) % 5 == 0 for x, y in (t["goal"] for t in ad_gym.tasks("DarkRoom-v0", "test")))
    assert ad_gym.tasks("DarkRoom-v0", "test")[:3] == [{"goal": (0, 0)}, {"goal": (0, 5)}, {"goal": (1, 2)}]


def test_a_task_works_for_make_and_for_reset():
    task = ad_gym.tasks("DarkRoom-v0", "train")[10]
    assert gym.make("DarkRoom-v0", **task).unwrapped.task == task
    env = gym.make("DarkRoom-v0")
    env.reset(options=task)
    assert env.unwrapped.goal == task["goal"]


def test_unknown_split_or_env_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown split 'val'.*\['train', 'test', 'all'\]"):
        ad_gym.tasks("DarkRoom-v0", "val")
    with pytest.raises(ValueError, match=r"unknown env id 'DarkRom-v0'.*DarkRoom-v0"):
        ad_gym.tasks("DarkRom-v0", "train")
