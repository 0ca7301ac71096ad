"""The history file format: round trip, folder loading, and damaged or foreign files."""

import json
import zipfile

import numpy as np
import pytest

from ad_gym.data.histories import History, HistoryFileError, load_histories, read_history, save_history

ARRAYS = ("observations", "actions", "rewards", "dones")


def make_history(task_index=0, goal=(1, 2), env_id="DarkRoom-v0", streams=2, steps=40, size=9):
    rng = np.random.default_rng(task_index)
    return History(
        task={"goal": goal},
        observations=rng.integers(0, size, size=(streams, steps, 2)),
        actions=rng.integers(0, 5, size=(streams, steps)),
        rewards=rng.integers(0, 2, size=(streams, steps)).astype(np.float32),
        dones=np.tile(np.arange(steps) % 20 == 19, (streams, 1)),
        metadata={"env_id": env_id, "task_index": task_index, "seed": 0, "source": {"algo": "a2c"}},
    )


@pytest.fixture
def saved(tmp_path):
    """A history of 400 steps saved to disk: (path, original)."""
    original = make_history(steps=400)
    return save_history(original, tmp_path / "goal-1-2.npz"), original


def write_npz(path, metadata, **arrays):
    """An .npz file laid out like a history, with whatever arrays and metadata a test needs."""
    np.savez(path, metadata=np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8), **arrays)
    return path


# -- round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id, size", [("DarkRoom-v0", 9), ("DarkRoomHard-v0", 17)])
def test_round_trip(tmp_path, env_id, size):
    original = make_history(env_id=env_id, size=size, goal=[3, 4])  # a list goal, as JSON would give it
    loaded = read_history(save_history(original, tmp_path / "a.npz"))
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.task == {"goal": (3, 4)} and isinstance(loaded.task["goal"], tuple)
    assert loaded.metadata["env_id"] == env_id == loaded.env_id
    assert loaded.metadata["task_index"] == 0 and loaded.metadata["source"] == {"algo": "a2c"}
    assert loaded.metadata["format"] == "ad_gym.history" and loaded.metadata["format_version"] == 1
    assert "task" not in loaded.metadata  # the task is its own field
    assert loaded.observations.dtype == np.uint8 and loaded.actions.dtype == np.uint8  # compact storage
    assert loaded.rewards.dtype == np.float32 and loaded.dones.dtype == np.bool_
    assert (loaded.n_streams, loaded.n_steps) == (2, 40)
    assert loaded.next_observations is None  # a history recorded without them loads as before
    assert not list(tmp_path.glob(".*")), "the temporary file was renamed into place"


def test_next_observations_round_trip_and_shape_check(tmp_path):
    original = make_history()
    ended_on = np.roll(original.observations, -1, axis=1)
    with_next = History(**{**vars(original), "next_observations": ended_on})
    loaded = read_history(save_history(with_next, tmp_path / "a.npz"))
    np.testing.assert_array_equal(loaded.next_observations, ended_on)
    assert loaded.next_observations.dtype == np.uint8
    with pytest.raises(ValueError, match="next_observations has shape"):
        History(**{**vars(original), "next_observations": ended_on[:, :-1]})


def test_file_holds_no_pickled_objects(saved):
    path, _ = saved
    with np.load(path, allow_pickle=False) as data:  # would raise on any object array
        assert sorted(data.files) == sorted([*ARRAYS, "metadata"])
        assert all(data[key].dtype != object for key in data.files)
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())


def test_history_files_must_end_in_npz(tmp_path):
    with pytest.raises(ValueError, match=".npz"):
        save_history(make_history(), tmp_path / "a.pkl")


def test_episode_returns():
    history = make_history()
    returns = history.episode_returns()
    assert len(returns) == 2 and returns[0].shape == (2,)  # 2 streams, 2 complete episodes each
    assert returns[1][1] == history.rewards[1, 20:40].sum()


# -- folders --------------------------------------------------------------------------------------


def test_folder_loads_sorted_by_task_index(tmp_path):
    # File names sort the other way round from the task indices.
    for name, index, goal in (("a.npz", 7, (1, 3)), ("b.npz", 2, (0, 2)), ("c.npz", 0, (0, 1)), ("d.npz", 5, (1, 0))):
        save_history(make_history(index, goal), tmp_path / name)
    loaded = load_histories(tmp_path)
    assert [h.metadata["task_index"] for h in loaded] == [0, 2, 5, 7]
    assert [h.task["goal"] for h in loaded] == [(0, 1), (0, 2), (1, 0), (1, 3)]


@pytest.mark.parametrize("env_id", ["DarkRoom-v0", "DarkKeyToDoor-v1"])
def test_folders_load_in_the_envs_dtypes_or_compact_as_stored(tmp_path, env_id):
    import gymnasium as gym

    save_history(make_history(env_id=env_id), tmp_path / "a.npz")
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    loaded, compact = load_histories(tmp_path)[0], load_histories(tmp_path, compact=True)[0]
    assert loaded.observations.dtype == obs.dtype == env.observation_space.dtype  # int64, as env.step returns
    assert loaded.actions.dtype == env.action_space.dtype
    assert compact.observations.dtype == compact.actions.dtype == np.uint8  # as stored
    np.testing.assert_array_equal(loaded.observations, compact.observations)
    np.testing.assert_array_equal(loaded.actions, compact.actions)


def test_single_file_and_namespaced_env_id(saved):
    path, _ = saved
    assert [h.path for h in load_histories(path)] == [path]
    assert len(load_histories(path.parent, env_id="ad_gym/DarkRoom-v0")) == 1


def test_hidden_and_other_files_are_ignored(tmp_path):
    save_history(make_history(), tmp_path / "a.npz")
    (tmp_path / ".a.npz.123.tmp").write_bytes(b"an interrupted write")
    (tmp_path / ".b.npz").write_bytes(b"hidden")
    (tmp_path / "collection.json").write_text("{}")
    assert len(load_histories(tmp_path)) == 1


def test_other_env_is_a_history_file_error(tmp_path):
    save_history(make_history(), tmp_path / "a.npz")
    with pytest.raises(HistoryFileError, match="expected DarkRoomHard-v0 histories"):
        load_histories(tmp_path, env_id="DarkRoomHard-v0")


def test_folder_mixing_envs_is_refused(tmp_path):
    save_history(make_history(), tmp_path / "a.npz")
    save_history(make_history(1, env_id="DarkRoomHard-v0"), tmp_path / "b.npz")
    with pytest.raises(ValueError, match="mixes histories of several envs"):
        load_histories(tmp_path)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="holds no history files"):
        load_histories(tmp_path)
    with pytest.raises(FileNotFoundError, match="no history file or folder"):
        load_histories(tmp_path / "missing")
    with pytest.raises(HistoryFileError, match="no history file"):
        read_history(tmp_path / "missing.npz")


# -- damaged files --------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 1, 10, 0.5, -22, -1], ids=lambda k: f"keep={k}")
def test_truncated_file_is_a_history_file_error(saved, keep):
    path, _ = saved
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data) if keep < 0 else keep
    path.write_bytes(data[:cut])
    with pytest.raises(HistoryFileError, match="truncated or corrupted") as error:
        read_history(path)
    assert str(path) in str(error.value) and "collect that task again" in str(error.value)
    with pytest.raises(HistoryFileError):
        load_histories(path.parent)


@pytest.mark.parametrize("member", [0, 1, 2, 3, 4])
def test_damaged_zip_headers_in_the_middle_are_a_history_file_error(saved, member):
    path, _ = saved
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        offset = archive.infolist()[member].header_offset
    data[offset : offset + 4] = b"XXXX"  # the local header's magic number of one array
    path.write_bytes(bytes(data))
    with pytest.raises(HistoryFileError, match="corrupted"):
        read_history(path)


def test_corrupted_bytes_anywhere_are_a_history_file_error(saved, tmp_path):
    """Corruption anywhere (inside a compressed array, a compression-method field, ...) is a
    HistoryFileError, never zlib.error or NotImplementedError.

    Flips 8 bytes at every 16th offset of a file; each damaged copy must either be refused with
    HistoryFileError or (when only unused fields such as timestamps were hit) read back unchanged."""
    path, original = saved
    data = path.read_bytes()
    escaped, silently_wrong = {}, []
    for start in range(0, len(data) - 8, 16):
        damaged = bytearray(data)
        damaged[start : start + 8] = bytes(b ^ 0xFF for b in damaged[start : start + 8])
        copy = tmp_path / "damaged.npz"
        copy.write_bytes(bytes(damaged))
        try:
            loaded = read_history(copy)
        except HistoryFileError:
            continue
        except Exception as exc:  # noqa: BLE001  (collect every kind that escapes)
            escaped.setdefault(f"{type(exc).__module__}.{type(exc).__name__}", []).append(start)
            continue
        if not all(np.array_equal(getattr(loaded, n), getattr(original, n)) for n in ARRAYS):
            silently_wrong.append(start)
    assert not silently_wrong, f"damaged files read back with different arrays at offsets {silently_wrong}"
    assert not escaped, "not HistoryFileError: " + "; ".join(
        f"{kind} at {len(offsets)} offsets (e.g. {offsets[:3]})" for kind, offsets in escaped.items()
    )


def test_npz_that_is_not_a_history(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(HistoryFileError, match="not an ad-gym history file: it lacks"):
        read_history(tmp_path / "x.npz")
    (tmp_path / "text.npz").write_text("just text\n")
    with pytest.raises(HistoryFileError, match="text.npz"):
        read_history(tmp_path / "text.npz")


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"format": "something.else", "format_version": 1, "task": {"goal": [1, 2]}}, "not an ad-gym history"),
        ({"format": "ad_gym.history", "format_version": 99, "task": {"goal": [1, 2]}}, "format version 99"),
        ({"format": "ad_gym.history", "format_version": 1}, "no task"),
    ],
)
def test_foreign_metadata_is_a_history_file_error(tmp_path, metadata, message):
    arrays = {name: getattr(make_history(), name) for name in ARRAYS}
    with pytest.raises(HistoryFileError, match=message):
        read_history(write_npz(tmp_path / "x.npz", metadata, **arrays))


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    history = make_history()
    arrays = {name: getattr(history, name) for name in ARRAYS}
    arrays["actions"] = np.array([[object()] * 40] * 2, dtype=object)
    meta = {"format": "ad_gym.history", "format_version": 1, "task": {"goal": [1, 2]}}
    with pytest.raises(HistoryFileError, match="x.npz"):
        read_history(write_npz(tmp_path / "x.npz", meta, **arrays))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: {**a, "dones": a["dones"][:, :10]}, "dones has shape"),
        (lambda a: {**a, "observations": a["observations"][:1]}, "observations has shape"),
        (lambda a: {**a, "actions": a["actions"][:, :-1]}, "actions has shape"),
        (lambda a: {**a, "rewards": a["rewards"][0], "dones": a["dones"][0]}, "rewards must have shape"),
        (lambda a: {**a, "dones": a["dones"].astype(np.int8)}, "dones must be boolean"),
        (lambda a: {**a, "rewards": np.where(a["dones"], np.nan, a["rewards"])}, "NaN"),
    ],
    ids=["dones", "observations", "actions", "rewards-1d", "dones-dtype", "nan-rewards"],
)
def test_inconsistent_arrays_are_refused(tmp_path, change, message):
    history = make_history()
    arrays = change({name: getattr(history, name) for name in ARRAYS})
    with pytest.raises(ValueError, match=message):  # when built in memory ...
        History(task=history.task, **arrays)
    meta = {"format": "ad_gym.history", "format_version": 1, "task": {"goal": [1, 2]}}
    with pytest.raises(HistoryFileError, match=message):  # ... and when read from a file
        read_history(write_npz(tmp_path / "x.npz", meta, **arrays))


def _metadata_is_a_list(path):
    arrays = {name: getattr(make_history(), name) for name in ARRAYS}
    write_npz(path, [1, 2, 3], **arrays)


def _npy_file_named_npz(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


@pytest.mark.parametrize("make_file", [_metadata_is_a_list, _npy_file_named_npz], ids=lambda f: f.__name__[1:])
def test_malformed_files_are_a_history_file_error(tmp_path, make_file):
    """Malformed files are HistoryFileErrors: metadata JSON that is not an object, and a plain .npy
    file under a .npz name."""
    path = tmp_path / "x.npz"
    make_file(path)
    with pytest.raises(HistoryFileError, match="x.npz"):
        read_history(path)


@pytest.mark.parametrize("change, message", [
    (lambda h: h.actions.__setitem__((0, 3), 5), r"actions lie in \[0, 5\], outside Discrete\(5\)"),
    (lambda h: h.observations.__setitem__((1, 0, 0), 9), r"observations lie in \[0, 9\], outside MultiDiscrete"),
    (lambda h: setattr(h, "observations", h.observations + 0.5), "observations are float64, expected integers"),
    (lambda h: setattr(h, "observations", h.observations[..., :1]), r"observations have shape \(1,\) per step"),
])
def test_contents_outside_the_envs_spaces_are_refused_on_load_naming_file_and_field(tmp_path, change, message):
    history = make_history()
    change(history)
    path = save_history(history, tmp_path / "bad.npz")
    with pytest.raises(HistoryFileError, match=message) as error:
        load_histories(tmp_path)
    assert str(path) in str(error.value)
