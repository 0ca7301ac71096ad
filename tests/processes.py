"""Reading a job's process tree from /proc, for the tests that kill jobs."""

import os

HAS_PROC = os.path.exists("/proc/self/task")


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has exited
    except OSError:
        return False
