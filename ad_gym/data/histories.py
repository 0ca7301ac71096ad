"""The learning-history file format: one compressed ``.npz`` file per task.

A history is everything one source learner did on one task, stream by stream, in time order.
Each file holds four arrays (five with ``next_observations``) and a JSON metadata blob, and is
read with ``allow_pickle=False``, so loading a file never runs code from it:

================== ================================ ===========================================
key                shape                            meaning
================== ================================ ===========================================
observations       (streams, steps, *obs_shape)     the observation each action was chosen from
actions            (streams, steps, *action_shape)  the action taken
rewards            (streams, steps) float32         the env's reward, as the env returned it
dones              (streams, steps) bool            True where an episode ended after this step
next_observations  (streams, steps, *obs_shape)     optional: what each action led to; where an
                                                    episode ended, the view it ended on (SB3's
                                                    ``terminal_observation``)
metadata           (bytes,) uint8                   UTF-8 JSON: format, env_id, task, source,
                                                    seed, ad_gym version, ...
================== ================================ ===========================================

``next_observations`` repeats ``observations[:, t + 1]`` inside an episode; what it adds is the
view each episode ended on, which the env's reset replaces before the next action is chosen (a
Watermaze episode ends on its platform, so the platform's own view is recorded only here). Files
collected before ad-gym recorded it lack the key and still load, with ``next_observations`` None.

Pixel histories (observations of two or more dimensions, such as Watermaze's images) store each
distinct observation once: ``observation_table (K, *obs_shape)``, and ``observations`` and
``next_observations`` ``(streams, steps)`` hold row numbers of that table. `History.observations`
hides this: it is then an `IndexedObservations`, which indexes like the full array and decodes
only what is asked for.

Integer arrays are stored in the smallest integer type that holds their values. Files are
written to a temporary name and renamed into place, so a file under its final name is always
complete; a truncated or corrupted one is reported as `HistoryFileError`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ad_gym.atomic import atomic_write
from ad_gym.envs.tasks import normalize_task

FORMAT = "ad_gym.history"
FORMAT_VERSION = 1
SUFFIX = ".npz"
ARRAY_KEYS = ("observations", "actions", "rewards", "dones")
NEXT_OBSERVATIONS = "next_observations"  # optional: histories recorded before it lack it


class HistoryFileError(ValueError):
    """A history file is missing, truncated, corrupted or not an ad-gym history."""


class IndexedObservations:
    """Observations stored as a table of distinct values and, per step, a row of that table.

    Indexes like the ``(streams, steps, *obs_shape)`` array it stands for (``obs[stream]``,
    ``obs[stream, steps]``), decoding only the selected steps, so the histories of a pixel env fit
    in memory. ``np.asarray(obs)`` decodes everything.
    """

    def __init__(self, table: np.ndarray, index: np.ndarray):
        self.table, self.index = table, index  # (K, *obs_shape), (streams, steps) ints

    @classmethod
    def from_array(cls, observations: np.ndarray) -> "IndexedObservations":
        """Encode a ``(streams, steps, *obs_shape)`` array."""
        flat = observations.reshape(-1, *observations.shape[2:])
        rows = np.ascontiguousarray(flat).reshape(len(flat), -1).view(np.dtype((np.void, flat[0].nbytes)))[:, 0]
        _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        return cls(flat[first], inverse.reshape(observations.shape[:2]))

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.index.shape, *self.table.shape[1:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.table.dtype

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        return self.table[self.index[key]]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.table[self.index]
        return array if dtype is None else array.astype(dtype)


@dataclass
class History:
    """One task's learning history: every stream of the source learner, in time order."""

    task: dict[str, Any]
    observations: np.ndarray | IndexedObservations  # (streams, steps, *obs_shape)
    actions: np.ndarray  # (streams, steps, *action_shape)
    rewards: np.ndarray  # (streams, steps) float32
    dones: np.ndarray  # (streams, steps) bool: an episode ended after this step
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # (streams, steps, *obs_shape): the observation each action led to, before any reset; None in
    # histories recorded without it.
    next_observations: np.ndarray | IndexedObservations | None = None

    def __post_init__(self):
        self.task = normalize_task(self.task)
        where = str(self.path or "history")
        _check_arrays(self.observations, self.actions, self.rewards, self.dones, where=where)
        if self.next_observations is not None:
            if self.next_observations.shape != self.observations.shape:
                raise ValueError(
                    f"{where}: next_observations has shape {self.next_observations.shape}, expected "
                    f"{self.observations.shape} like observations"
                )
            # Pixels: both as rows of one table, which is how training reads them.
            self.observations, self.next_observations = _shared_table(self.observations, self.next_observations)

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def n_streams(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_steps(self) -> int:
        """Steps per stream."""
        return self.rewards.shape[1]

    def in_env_dtypes(self) -> "History":
        """This history with its actions and observations in its env's space dtypes (what
        ``env.step`` returns, e.g. int64 cells), not the smallest type that holds them (how they
        are stored, and how training keeps them). Pixel histories' views are already the env's
        uint8; histories of an env ad_gym does not register are returned as they are."""
        from ad_gym.envs.tasks import env_ids

        if self.env_id not in env_ids():
            return self
        observation_space, action_space = _spaces(self.env_id)

        def cast(values, space):
            if values is None or isinstance(values, IndexedObservations):
                return values
            return values.astype(space.dtype, copy=False)

        return dataclasses.replace(self, observations=cast(self.observations, observation_space),
                                   actions=cast(self.actions, action_space),
                                   next_observations=cast(self.next_observations, observation_space))

    def episode_returns(self) -> list[np.ndarray]:
        """Per stream, the return of each complete episode, in order."""
        returns = []
        for rewards, dones in zip(self.rewards, self.dones):
            ends = np.flatnonzero(dones)
            if len(ends) == 0:
                returns.append(np.zeros(0, dtype=np.float64))
                continue
            cumulative = np.cumsum(rewards, dtype=np.float64)[ends]
            returns.append(np.diff(cumulative, prepend=0.0))
        return returns


def save_history(history: History, path: str | os.PathLike) -> Path:
    """Write ``history`` to ``path`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"history files end in {SUFFIX!r}, got {str(path)!r}")
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, **history.metadata, "task": history.task}
    observations, next_observations = _shared_table(history.observations, history.next_observations)
    table = {}
    if isinstance(observations, IndexedObservations):
        table = {"observation_table": observations.table}
        observations = observations.index
        next_observations = None if next_observations is None else next_observations.index
    if next_observations is not None:
        table[NEXT_OBSERVATIONS] = _compact(next_observations)
    arrays = {
        **table,
        "observations": _compact(observations),
        "actions": _compact(history.actions),
        "rewards": history.rewards.astype(np.float32, copy=False),
        "dones": history.dones.astype(bool, copy=False),
        "metadata": np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8),
    }
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def read_history(path: str | os.PathLike) -> History:
    """Read and validate one history file."""
    path = Path(path)
    if not path.is_file():
        raise HistoryFileError(f"no history file at {str(path)!r}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise HistoryFileError(f"{path} is not an ad-gym history file: it holds one array, not an .npz archive")
        with data:
            missing = [k for k in (*ARRAY_KEYS, "metadata") if k not in data.files]
            if missing:
                raise HistoryFileError(f"{path} is not an ad-gym history file: it lacks {missing}")
            arrays = {k: data[k] for k in (*ARRAY_KEYS, NEXT_OBSERVATIONS) if k in data.files}
            if "observation_table" in data.files:
                table = data["observation_table"]
                for key in ("observations", NEXT_OBSERVATIONS):
                    if key in arrays:
                        arrays[key] = _indexed(path, table, arrays[key])
            metadata = json.loads(data["metadata"].tobytes().decode())
    except HistoryFileError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy and json each raise their own types for damage
        raise HistoryFileError(
            f"{path} is truncated or corrupted and cannot be read ({type(exc).__name__}: {exc}); "
            "delete it and collect that task again"
        ) from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        found = metadata.get("format") if isinstance(metadata, dict) else type(metadata).__name__
        raise HistoryFileError(f"{path} is not an ad-gym history file (format {found!r})")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise HistoryFileError(
            f"{path} has history format version {metadata.get('format_version')!r}; "
            f"this ad_gym reads version {FORMAT_VERSION}"
        )
    task = metadata.pop("task", None)
    if not isinstance(task, dict):
        raise HistoryFileError(f"{path} has no task in its metadata")
    try:
        return History(task=task, metadata=metadata, path=path, **arrays)
    except (ValueError, TypeError) as exc:
        raise HistoryFileError(str(exc)) from exc


def history_files(path: str | os.PathLike) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix == SUFFIX and not p.name.startswith("."))
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"no history file or folder at {str(path)!r}")


def check_one_env(histories: list[History], where: str) -> None:
    """A ValueError naming ``where`` if ``histories`` come from more than one env."""
    env_ids = sorted({str(h.env_id) for h in histories})
    if len(env_ids) > 1:
        raise ValueError(f"{where} mixes histories of several envs: {env_ids}")


def load_histories(path: str | os.PathLike, env_id: str | None = None, compact: bool = False) -> list[History]:
    """Load every history in a folder (or one file), one `History` per task, in task order.

    Actions and observations come in their env's space dtypes (`History.in_env_dtypes`), or, with
    ``compact=True``, in the smallest integer type that holds them, as stored (training loads them
    so: a Key-to-Door collection takes an eighth of the memory).

    Raises `HistoryFileError` for a file that is truncated, corrupted or from another env than
    ``env_id`` (when given), and `ValueError` if the folder mixes envs or holds no histories.
    """
    return list(iter_histories(path, env_id, compact))


def iter_histories(path: str | os.PathLike, env_id: str | None = None, compact: bool = False) -> Iterator[History]:
    """`load_histories` one history at a time: a dataset larger than memory is read file by file."""
    files = history_files(path)
    if not files:
        raise ValueError(f"{str(path)!r} holds no history files (*{SUFFIX})")
    wanted = None
    if env_id is not None:
        from ad_gym.envs.tasks import canonical_env_id

        wanted = canonical_env_id(env_id)
    first_env = None
    for file in sorted(files, key=lambda p: (_task_index(p), str(p))):
        history = read_history(file)
        if wanted is not None and history.env_id != wanted:
            raise HistoryFileError(f"expected {wanted} histories, but {str(file)!r} holds another env's histories")
        first_env = history.env_id if first_env is None else first_env
        if history.env_id != first_env:
            raise ValueError(f"{str(path)!r} mixes histories of several envs: {sorted({str(first_env), str(history.env_id)})}")
        check_in_spaces(history)
        yield history if compact else history.in_env_dtypes()


def _task_index(path: Path) -> int:
    """A history's place in its collection, read from its metadata alone (0 if unreadable: reading
    the whole file then reports the damage)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return int(json.loads(data["metadata"].tobytes().decode()).get("task_index", 0))
    except Exception:
        return 0


@functools.lru_cache(maxsize=None)
def _spaces(env_id: str):
    import gymnasium as gym

    env = gym.make(env_id)
    spaces = env.observation_space, env.action_space
    env.close()
    return spaces


def check_in_spaces(history: History) -> None:
    """A HistoryFileError naming the file and the field if its actions or observations lie outside
    its env's spaces (a model would index past its embeddings, or read truncated floats). Histories
    of an env this ad_gym does not register are not checked."""
    from ad_gym.envs.tasks import env_ids

    if history.env_id not in env_ids():
        return
    observation_space, action_space = _spaces(history.env_id)
    where = f"{history.path or 'history'} ({history.env_id})"
    _check_in_space(history.actions, action_space, f"{where}: actions")
    for name in ("observations", NEXT_OBSERVATIONS):
        values = getattr(history, name)
        if values is not None:  # pixels: every distinct view is a row of the table
            _check_in_space(values.table if isinstance(values, IndexedObservations) else values,
                            observation_space, f"{where}: {name}", leading=1 if isinstance(values, IndexedObservations) else 2)


def _check_in_space(values: np.ndarray, space, what: str, leading: int = 2) -> None:
    import gymnasium as gym

    if values.shape[leading:] != space.shape:
        raise HistoryFileError(f"{what} have shape {values.shape[leading:]} per step, expected {space.shape} of {space}")
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)) or np.issubdtype(space.dtype, np.integer):
        if not np.issubdtype(values.dtype, np.integer):
            raise HistoryFileError(f"{what} are {values.dtype}, expected integers of {space}")
    elif not np.all(np.isfinite(values)):
        raise HistoryFileError(f"{what} hold NaN or infinite values")
    if values.size == 0:
        return
    if isinstance(space, gym.spaces.Discrete):
        low, high = space.start, space.start + space.n - 1
    elif isinstance(space, gym.spaces.MultiDiscrete):
        low, high = space.start, space.start + space.nvec - 1
    elif isinstance(space, gym.spaces.Box):
        low, high = space.low, space.high
    else:
        return
    if not (np.all(values >= low) and np.all(values <= high)):
        raise HistoryFileError(f"{what} lie in [{values.min()}, {values.max()}], outside {space}")


def _shared_table(observations, next_observations):
    """Pixel observations (and next observations) as `IndexedObservations` over one table, so a
    view seen both as an observation and as a next observation is stored once; others unchanged."""
    pixels = observations.ndim >= 4
    if not pixels:
        return observations, next_observations
    if next_observations is None:
        if isinstance(observations, np.ndarray):
            observations = IndexedObservations.from_array(observations)
        return observations, None
    if (
        isinstance(observations, IndexedObservations)
        and isinstance(next_observations, IndexedObservations)
        and observations.table is next_observations.table
    ):
        return observations, next_observations
    both = IndexedObservations.from_array(np.concatenate([np.asarray(observations), np.asarray(next_observations)], axis=1))
    steps = observations.shape[1]
    return IndexedObservations(both.table, both.index[:, :steps]), IndexedObservations(both.table, both.index[:, steps:])


def _indexed(path: Path, table: np.ndarray, index: np.ndarray) -> IndexedObservations:
    if index.ndim != 2 or not np.issubdtype(index.dtype, np.integer) or (index.size and (index.min() < 0 or index.max() >= len(table))):
        raise HistoryFileError(f"{path} is corrupted: its observation indexes do not fit its observation table")
    return IndexedObservations(table, index)


def _check_arrays(observations, actions, rewards, dones, where: str) -> None:
    for name, array in zip(ARRAY_KEYS, (observations, actions, rewards, dones)):
        if name == "observations" and isinstance(array, IndexedObservations):
            continue
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{where}: {name} must be a numpy array, got {type(array).__name__}")
    if rewards.ndim != 2:
        raise ValueError(f"{where}: rewards must have shape (streams, steps), got {rewards.shape}")
    if dones.shape != rewards.shape:
        raise ValueError(f"{where}: dones has shape {dones.shape}, expected {rewards.shape} like rewards")
    for name, array in (("observations", observations), ("actions", actions)):
        if array.shape[:2] != rewards.shape:
            raise ValueError(
                f"{where}: {name} has shape {array.shape}, expected it to start with (streams, steps) = {rewards.shape}"
            )
    if dones.dtype != np.bool_:
        raise ValueError(f"{where}: dones must be boolean, got {dones.dtype}")
    if not np.issubdtype(rewards.dtype, np.number):
        raise ValueError(f"{where}: rewards must be numbers, got {rewards.dtype}")
    if not np.all(np.isfinite(rewards)):
        raise ValueError(f"{where}: rewards hold NaN or infinite values")


def _compact(array: np.ndarray) -> np.ndarray:
    """Integers in the smallest integer type that holds them; other types unchanged."""
    if not np.issubdtype(array.dtype, np.integer) or array.size == 0:
        return array
    low, high = int(array.min()), int(array.max())
    for dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return array.astype(dtype, copy=False)
    return array
