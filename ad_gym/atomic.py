"""Atomic file writes: a file under its final name is always complete."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, rename it into place.

    An interruption leaves at most a hidden ``.*.tmp`` file, never a partial file under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates files readable by their owner only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_orphaned_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the hidden ``.*.tmp`` files `atomic_write` left in ``folder`` when a writer was
    killed before its rename; a folder is written by one job at a time, so none is in use."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    orphans = [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file()]
    for orphan in orphans:
        orphan.unlink(missing_ok=True)
    return orphans
