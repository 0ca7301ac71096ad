"""The history file format: round trip, atomic writes, validation of damaged files."""

import numpy as np
import pytest

from ad_gym.data.histories import History, HistoryFileError, load_histories, read_history, save_history


def make_history(task_index=0, goal=(1, 2), env_id="DarkRoom-v0", streams=2, steps=40):
    rng = np.random.default_rng(task_index)
    return History(
        task={"goal": goal},
        observations=rng.integers(0, 9, size=(streams, steps, 2)),
        actions=rng.integers(0, 5, size=(streams, steps)),
        rewards=rng.integers(0, 2, size=(streams, steps)).astype(np.float32),
        dones=np.tile(np.arange(steps) % 20 == 19, (streams, 1)),
        metadata={"env_id": env_id, "task_index": task_index, "seed": 0},
    )


def test_round_trip(tmp_path):
    original = make_history()
    loaded = read_history(save_history(original, tmp_path / "a.npz"))
    for name in ("observations", "actions", "rewards", "dones"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.task == {"goal": (1, 2)} and loaded.metadata["env_id"] == "DarkRoom-v0"
    assert loaded.observations.dtype == np.uint8  # compact storage
    np.load(tmp_path / "a.npz", allow_pickle=False)  # no pickled object anywhere
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed into place


def test_episode_returns():
    history = make_history()
    returns = history.episode_returns()
    assert len(returns) == 2 and returns[0].shape == (2,)
    assert returns[0][0] == history.rewards[0, :20].sum()


def test_folder_loads_in_task_order(tmp_path):
    save_history(make_history(5, (0, 5)), tmp_path / "b.npz")
    save_history(make_history(2, (0, 2)), tmp_path / "c.npz")
    assert [h.task["goal"] for h in load_histories(tmp_path)] == [(0, 2), (0, 5)]


def test_truncated_file_is_reported(tmp_path):
    path = save_history(make_history(), tmp_path / "a.npz")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(HistoryFileError, match="truncated or corrupted"):
        read_history(path)


def test_corrupted_bytes_are_reported(tmp_path):
    path = save_history(make_history(steps=400), tmp_path / "a.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 50] = bytes(50)
    path.write_bytes(bytes(data))
    with pytest.raises(HistoryFileError, match="a.npz"):
        read_history(path)


def test_foreign_npz_is_reported(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(HistoryFileError, match="not an ad-gym history"):
        read_history(tmp_path / "x.npz")


def test_inconsistent_arrays_are_refused():
    good = make_history()
    with pytest.raises(ValueError, match="dones"):
        History(task=good.task, observations=good.observations, actions=good.actions, rewards=good.rewards,
                dones=good.dones[:, :10])
    with pytest.raises(ValueError, match="observations"):
        History(task=good.task, observations=good.observations[:1], actions=good.actions, rewards=good.rewards,
                dones=good.dones)


def test_wrong_env_and_empty_folders(tmp_path):
    save_history(make_history(), tmp_path / "a.npz")
    with pytest.raises(HistoryFileError, match="DarkRoomHard-v0"):
        load_histories(tmp_path, env_id="DarkRoomHard-v0")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no history files"):
        load_histories(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_histories(tmp_path / "missing")
