"""Training tokens in files: datasets larger than memory.

`write_token_files` cuts the training tokens (`ad_gym.data.windows`) from histories read one at a
time and appends them to one raw file per column; `TokenFiles` then reads each batch's segments
with positioned reads. Training memory so grows with the batch, not with the dataset: the files
hold the dataset, the page cache (which the kernel may drop at will) the parts read lately.

A folder of token files::

    index.npz          starts, ends, history_index (S,) per stream; obs_table for pixel envs;
                       meta: UTF-8 JSON (columns and their row shapes, tasks, env_id, source, the
                       key of the histories and settings the tokens were cut from)
    <column>.bin       raw little-endian rows, token after token

``index.npz`` is written last and atomically, so a folder with it is complete; one without it (a
build that was killed) is built again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ad_gym.atomic import atomic_write
from ad_gym.data.histories import History
from ad_gym.data.windows import TOKEN_COLUMNS, history_tokens

INDEX = "index.npz"
DTYPES = {"obs": "<i8", "prev_actions": "<i8", "prev_rewards": "<f4", "steps": "<i8", "actions": "<i8", "final_obs": "<i8"}
_ORDER = (*TOKEN_COLUMNS, "final_obs")  # the order of stream_tokens' arrays


class TokenFiles:
    """Token sequences stored as files (see the module docstring), read segment by segment.

    Offers what `SequenceSampler` reads of `TokenSequences`: ``starts``, ``ends``, ``obs_table``,
    ``final_obs`` (here whether the files hold the column; set it to None to not read it) and
    ``segments``.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        with np.load(self.folder / INDEX, allow_pickle=False) as index:
            self.starts, self.ends = index["starts"], index["ends"]
            self.history_index = index["history_index"]
            self.obs_table = index["obs_table"] if "obs_table" in index.files else None
            self.meta: dict[str, Any] = json.loads(index["meta"].tobytes().decode())
        self.shapes = {name: tuple(shape) for name, shape in self.meta["columns"].items()}
        self.final_obs: bool | None = "final_obs" in self.shapes
        self._fds = {name: os.open(self.folder / f"{name}.bin", os.O_RDONLY) for name in self.shapes}

    def __len__(self) -> int:
        return int(self.meta["n_tokens"])

    def segments(self, first: np.ndarray, length: int) -> dict[str, torch.Tensor]:
        """The ``length`` tokens from each of ``first`` (B,): (B, length, *row) tensors per column."""
        batch = {}
        for name, shape in self.shapes.items():
            if name == "final_obs" and not self.final_obs:
                continue
            dtype = np.dtype(DTYPES[name])
            row_bytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            rows = [np.frombuffer(os.pread(self._fds[name], length * row_bytes, int(f) * row_bytes), dtype=dtype)
                    for f in first]
            batch[name] = torch.from_numpy(np.stack(rows).reshape(len(first), length, *shape).astype(dtype.newbyteorder("=")))
        return batch

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def write_token_files(
    histories: Iterable[History],
    folder: str | os.PathLike,
    n_actions: int,
    every_k: int = 1,
    max_episodes: int | None = None,
    last_episodes: int | None = None,
    key: dict[str, Any] | None = None,
) -> TokenFiles:
    """Cut the tokens of ``histories`` (read one at a time from an iterator such as
    `ad_gym.data.histories.iter_histories`) into files in ``folder``; ``key`` is stored to tell
    later whether the files still match their histories and settings (`token_files`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX).unlink(missing_ok=True)  # the folder is incomplete until the new index is written
    temps = {name: folder / f".{name}.bin.tmp" for name in _ORDER}
    handles = {name: open(path, "wb") for name, path in temps.items()}
    lengths, owners, tables, tasks, shapes = [], [], [], [], {}
    env_id = source = None
    with_final = True
    try:
        for number, history, table, parts in history_tokens(histories, n_actions, every_k, max_episodes, last_episodes):
            env_id = env_id or history.env_id
            source = source if source is not None else history.metadata.get("source")
            tasks.append(history.task)
            if table is not None:
                tables.append(table)
            for part in parts:
                with_final = with_final and part[5] is not None
                for name, array in zip(_ORDER, part):
                    if name == "final_obs" and not with_final:
                        continue
                    array = np.ascontiguousarray(array, dtype=DTYPES[name])
                    shapes[name] = list(array.shape[1:])
                    handles[name].write(array.tobytes())
                lengths.append(len(part[4]))
                owners.append(number)
    finally:
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
    if not with_final:
        temps.pop("final_obs").unlink()
        shapes.pop("final_obs", None)
    if not lengths:
        for path in temps.values():
            path.unlink(missing_ok=True)
        raise ValueError("the histories hold no complete episode")
    for name, path in temps.items():
        os.replace(path, folder / f"{name}.bin")
    ends = np.cumsum(lengths, dtype=np.int64)
    meta = {"columns": shapes, "n_tokens": int(ends[-1]), "tasks": tasks, "env_id": env_id, "source": source,
            "key": key or {}}
    arrays = {"starts": ends - np.asarray(lengths, dtype=np.int64), "ends": ends,
              "history_index": np.asarray(owners, dtype=np.int64),
              "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
    if tables:
        arrays["obs_table"] = np.concatenate(tables)
    atomic_write(folder / INDEX, lambda f: np.savez(f, **arrays))
    return TokenFiles(folder)


def stored_key(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The key a complete token folder was written with, or None (no folder, incomplete, unreadable)."""
    try:
        with np.load(Path(folder) / INDEX, allow_pickle=False) as index:
            return json.loads(index["meta"].tobytes().decode()).get("key")
    except Exception:
        return None


def wait_for_token_files(folder: str | os.PathLike, key: dict[str, Any], timeout_s: float = 24 * 3600) -> TokenFiles:
    """Under torchrun, ranks other than 0 wait here while rank 0 writes the files."""
    deadline = time.monotonic() + timeout_s
    while stored_key(folder) != key:
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank 0 did not write the token files in {folder} within {timeout_s:.0f} s")
        time.sleep(0.5)
    return TokenFiles(folder)
