"""Collecting SB3 learning histories: what is recorded is what happened, and collection resumes."""

import json

import numpy as np
import pytest

import ad_gym
from ad_gym.envs.dark_room import ACTION_DELTAS
from ad_gym.sources.collect import collect
from ad_gym.sources.sb3 import SourceConfig, learn_task
from tests.conftest import TINY_SOURCE


def assert_follows_the_env_rules(history, size=9, reward_once=False, episode_steps=20):
    """Re-derive every recorded observation and reward of every stream from the Dark Room rules."""
    goal, start = history.task["goal"], (size // 2, size // 2)
    steps = history.n_steps
    for obs, actions, rewards, dones in zip(history.observations, history.actions, history.rewards, history.dones):
        np.testing.assert_array_equal(np.flatnonzero(dones), np.arange(episode_steps - 1, steps, episode_steps))
        reached = False
        for t in range(steps):
            if t % episode_steps == 0:
                assert tuple(obs[t]) == start  # every episode starts at the centre
                reached = False
            arrived = tuple(int(v) for v in np.clip(obs[t] + ACTION_DELTAS[actions[t]], 0, size - 1))
            # exactly the env's reward: SB3's in-place bootstrapping of truncated episodes is not recorded
            expected = float(arrived == goal and not (reward_once and reached))
            reached |= arrived == goal
            assert rewards[t] == expected, (t, rewards[t])
            if t % episode_steps != episode_steps - 1 and t + 1 < steps:
                assert tuple(obs[t + 1]) == arrived


def test_recorded_histories_match_the_env_rules(tiny_histories):
    histories = ad_gym.load_histories(tiny_histories[0])
    assert [h.task for h in histories] == ad_gym.tasks("DarkRoom-v0", "train")[:2]
    for history in histories:
        assert history.n_streams == 2 and history.n_steps == 600
        assert_follows_the_env_rules(history)


@pytest.mark.parametrize("env_id, algo", [("DarkRoom-v0", "ppo"), ("DarkRoom-v0", "dqn"), ("DarkRoomHard-v0", "a2c")])
def test_every_source_algorithm_is_recorded_exactly(env_id, algo):
    task = ad_gym.tasks(env_id, "train")[3]
    history = learn_task(env_id, task, SourceConfig(algo=algo, n_streams=2, total_steps=1000), seed=0)
    assert history.metadata["source"]["algo"] == algo and history.n_steps >= 500
    hard = env_id == "DarkRoomHard-v0"
    assert_follows_the_env_rules(history, size=17 if hard else 9, reward_once=hard)


def test_metadata(tiny_histories):
    history = ad_gym.load_histories(tiny_histories[0])[0]
    meta = history.metadata
    assert meta["env_id"] == "DarkRoom-v0" and meta["seed"] == 0 and meta["ad_gym_version"] == ad_gym.__version__
    assert meta["source"]["algo"] == "a2c" and meta["source"]["n_streams"] == 2
    assert meta["source"]["algo_kwargs"]["ent_coef"] == 0.01
    manifest = json.loads((tiny_histories[0] / "collection.json").read_text())
    assert manifest["env_id"] == "DarkRoom-v0" and manifest["split"] == "train"


def test_the_source_learns():
    # A real run long enough to learn: the last episodes beat the first ones.
    history = collect_one(SourceConfig(total_steps=16_000))
    returns = np.stack(history.episode_returns())
    assert returns[:, -10:].mean() > returns[:, :10].mean() + 5


def collect_one(config, tmp_path=None, seed=0):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        collect("DarkRoom-v0", tmp, config=config, max_tasks=1, workers=1, progress=False, seed=seed)
        return ad_gym.load_histories(tmp)[0]


def test_same_seed_same_histories_and_seeds_differ():
    a, b, c = collect_one(TINY_SOURCE), collect_one(TINY_SOURCE), collect_one(TINY_SOURCE, seed=1)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.actions, c.actions)


def test_two_processes_give_the_same_histories_as_one(tmp_path, tiny_histories):
    results = collect("DarkRoom-v0", tmp_path, config=TINY_SOURCE, max_tasks=2, workers=2, progress=False)
    assert [r.skipped for r in results] == [False, False]
    for ours, reference in zip(ad_gym.load_histories(tmp_path), ad_gym.load_histories(tiny_histories[0])):
        np.testing.assert_array_equal(ours.actions, reference.actions)


def test_rerun_skips_finished_tasks_and_redoes_damaged_ones(tmp_path):
    collect("DarkRoom-v0", tmp_path, config=TINY_SOURCE, max_tasks=2, workers=1, progress=False)
    files = sorted(tmp_path.glob("*.npz"))
    stamps = [f.stat().st_mtime_ns for f in files]
    again = collect("DarkRoom-v0", tmp_path, config=TINY_SOURCE, max_tasks=2, workers=1, progress=False)
    assert all(r.skipped for r in again) and [f.stat().st_mtime_ns for f in files] == stamps
    files[1].write_bytes(files[1].read_bytes()[:200])  # an interrupted copy, say
    third = collect("DarkRoom-v0", tmp_path, config=TINY_SOURCE, max_tasks=2, workers=1, progress=False)
    assert [r.skipped for r in third] == [True, False]
    ad_gym.load_histories(tmp_path)  # readable again


def test_a_folder_of_other_histories_is_refused(tiny_histories):
    with pytest.raises(ValueError, match="holds DarkRoom-v0 histories, not DarkRoomHard-v0"):
        collect("DarkRoomHard-v0", tiny_histories[0], config=TINY_SOURCE, max_tasks=1, workers=1, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        collect("DarkRoom-v0", tiny_histories[0], config=SourceConfig(n_streams=2, total_steps=999), max_tasks=1,
                workers=1, progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"algo": "sac"}, "unknown algo"), ({"n_streams": 0}, "n_streams"), ({"hyperparams": {"lr": 1}}, "not A2C arguments"),
     ({"hyperparams": {"seed": 1}}, "may not set")],
)
def test_bad_source_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SourceConfig(**kwargs)


def test_bad_collect_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown split"):
        collect("DarkRoom-v0", tmp_path, split="validation", progress=False)
    with pytest.raises(ValueError, match="unknown env id"):
        collect("Pong-v5", tmp_path, progress=False)
