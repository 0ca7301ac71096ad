"""The fixed train / test task splits."""

import gymnasium as gym
import pytest

import ad_gym
from ad_gym.envs.tasks import family, task_key

# env id -> (grid size, number of held-out goals)
FAMILIES = {"DarkRoom-v0": (9, 16), "DarkRoomHard-v0": (17, 58)}


def goals(tasks):
    return [t["goal"] for t in tasks]


@pytest.mark.parametrize("env_id", FAMILIES)
def test_train_and_test_are_disjoint_and_cover_every_goal(env_id):
    size, n_test = FAMILIES[env_id]
    train, test, every = (goals(ad_gym.tasks(env_id, split)) for split in ("train", "test", "all"))
    assert len(every) == len(set(every)) == size * size  # 81 and 289 goals, each once
    assert set(every) == {(x, y) for x in range(size) for y in range(size)}
    assert not set(train) & set(test)
    assert set(train) | set(test) == set(every) and len(train) + len(test) == len(every)
    assert len(test) == n_test


def test_dark_room_holds_out_16_goals():
    test = goals(ad_gym.tasks("DarkRoom-v0", "test"))
    assert len(test) == 16
    assert all((x + 2 * y) % 5 == 0 for x, y in test)  # the documented rule
    assert test[:2] == [(0, 0), (0, 5)]  # the example in the docstring


@pytest.mark.parametrize("env_id", FAMILIES)
def test_default_split_is_train_and_the_order_is_fixed(env_id):
    assert ad_gym.tasks(env_id) == ad_gym.tasks(env_id, "train")
    assert ad_gym.tasks(env_id, "test") == ad_gym.tasks(env_id, "test")  # same list on every call


@pytest.mark.parametrize("env_id", FAMILIES)
@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_namespaced_id_gives_the_same_tasks(env_id, split):
    assert ad_gym.tasks(f"ad_gym/{env_id}", split) == ad_gym.tasks(env_id, split)


@pytest.mark.parametrize("env_id", FAMILIES)
def test_returned_tasks_are_copies(env_id):
    ad_gym.tasks(env_id, "train")[0]["goal"] = (99, 99)  # changing a returned task ...
    assert ad_gym.tasks(env_id, "train")[0]["goal"] != (99, 99)  # ... does not change the family


@pytest.mark.parametrize("env_id", FAMILIES)
def test_a_task_works_for_make_and_for_reset(env_id):
    for task in ad_gym.tasks(env_id, "test")[:5]:
        assert isinstance(task, dict) and set(task) == {"goal"}
        made = gym.make(env_id, **task)
        made.reset(seed=0)
        assert made.unwrapped.task == task
        env = gym.make(env_id)
        env.reset(options=task)
        assert env.unwrapped.task == task


@pytest.mark.parametrize("env_id", FAMILIES)
def test_task_keys_are_unique_file_names_and_indices_round_trip(env_id):
    every = ad_gym.tasks(env_id, "all")
    keys = [task_key(t) for t in every]
    assert len(set(keys)) == len(keys) and all(k.replace("-", "").replace("_", "").isalnum() for k in keys)
    assert task_key({"goal": (3, 5)}) == "goal-3-5"
    assert [family(env_id).index(t) for t in every] == list(range(len(every)))
    with pytest.raises(ValueError, match="is not a task"):
        family(env_id).index({"goal": (99, 99)})
