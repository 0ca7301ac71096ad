"""Time and peak memory of each stage of a long job, for the benchmarks' cost tables."""

from __future__ import annotations

import os
import resource
import threading
import time
from contextlib import contextmanager

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

def available_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity where the OS has one)."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


# The line this process's progress bars use: 0, or a side-by-side training process's slot.
BAR_POSITION = 0


def exit_with_parent(parent: int | None = None, poll_seconds: float = 0.5) -> None:
    """In a worker process: exit as soon as the process that started it is gone.

    A killed job (SIGTERM, SIGKILL, a closed terminal) cannot shut its process pool down, and its
    workers would otherwise train or collect on for minutes, unseen, taking the cores of whatever
    runs next. A daemon thread watches the parent's pid; what a worker has finished is already on
    disk (outputs are written atomically), and what it has not is redone by a rerun. ``parent``:
    the pid the pool was started from (pass it: a parent killed while the worker was still
    starting up is then noticed at once).
    """
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _rss_bytes(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _children_rss_bytes() -> int:
    """Resident memory of this process's live children (Linux; 0 elsewhere)."""
    total = 0
    try:
        with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children") as f:
            for pid in f.read().split():
                total += _rss_bytes(pid)
    except OSError:
        pass
    return total


class StageMeter:
    """``with meter.stage("train AD"): ...`` records seconds and peak resident memory (this
    process plus its worker processes, sampled every 0.2 s) of each stage."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.seconds: dict[str, float] = {}
        self.peak_gib: dict[str, float] = {}
        # Stages that ran inside another one, side by side (their seconds overlap): name -> seconds.
        self.side_by_side: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        peak = [_rss_bytes()]
        done = threading.Event()

        def sample():
            while not done.wait(self.interval):
                peak[0] = max(peak[0], _rss_bytes() + _children_rss_bytes())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start
            done.set()
            sampler.join()
            if peak[0] == 0:  # no /proc: fall back to the process's high-water mark
                peak[0] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.peak_gib[name] = peak[0] / 2**30

    def summary(self) -> str:
        stages = ", ".join(f"{k} {self.seconds[k] / 60:.1f} min (peak {self.peak_gib[k]:.2f} GiB)" for k in self.seconds)
        if self.side_by_side:
            stages += "; side by side: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in self.side_by_side.items())
        return stages
