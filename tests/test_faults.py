"""Fault injection: `ad-gym collect` (2 workers) and `ad-gym train` killed with SIGKILL at random
points (fixed per trial). Nothing of a killed job keeps running, nothing half-written sits under
a final name, and the rerun ends exactly where an uninterrupted run does."""

import random
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ad_gym.checkpoints import load_checkpoint
from ad_gym.data.histories import ARRAY_KEYS, NEXT_OBSERVATIONS, history_files, read_history
from tests.processes import HAS_PROC, alive, children

pytestmark = pytest.mark.skipif(not HAS_PROC, reason="reads the process tree from /proc")

COLLECT = ["collect", "DarkRoom-v0", "--max-tasks", "4", "--streams", "2", "--steps", "3000", "--workers", "2", "--no-progress"]
TINY_MODEL = ["context_len=40", "seq_len=60", "n_layer=2", "n_head=2", "n_embd=32", "ffn_dim=64", "batch_size=8"]
TRAIN = ["train", "--no-progress", *[arg for pair in [*TINY_MODEL, "updates=200", "checkpoint_every=5", "eval_every=10"]
                                      for arg in ("--set", pair)]]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from ad_gym.cli import main; sys.exit(main())", *args]


def kill_at_random(argv: list[str], trial: int, earliest: float, latest: float) -> list[int]:
    """Start ``argv``, SIGKILL it after a delay drawn for ``trial``; the pids of its children."""
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    deadline = time.monotonic() + random.Random(trial).uniform(earliest, latest)
    while time.monotonic() < deadline and job.poll() is None:
        seen.update(children(job.pid))
        time.sleep(0.05)
    job.kill()
    job.wait()
    return sorted(seen)


def assert_all_exit(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [p for p in pids if alive(p)]
    for pid in survivors:
        subprocess.run(["kill", "-9", str(pid)], check=False)
    assert not survivors, f"processes {survivors} outlived their killed job by 10 s"


def histories(folder) -> dict:
    return {path.name: read_history(path) for path in history_files(folder)}


@pytest.fixture(scope="module")
def collected_straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "histories"
    subprocess.run(cli(*COLLECT, "--out", str(out)), check=True, capture_output=True)
    return out


@pytest.mark.parametrize("trial", range(2))
def test_a_collect_killed_anywhere_leaves_nothing_running_or_half_written_and_reruns_to_the_same_histories(
        trial, collected_straight, tmp_path):
    out = tmp_path / "histories"
    assert_all_exit(kill_at_random(cli(*COLLECT, "--out", str(out)), trial, earliest=2, latest=12))
    if out.exists():
        histories(out)  # every file under its final name is whole: read_history validates it
    subprocess.run(cli(*COLLECT, "--out", str(out)), check=True, capture_output=True)
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the killed writes' leftovers are gone
    straight, rerun = histories(collected_straight), histories(out)
    assert straight.keys() == rerun.keys() and len(straight) == 4
    for name, history in straight.items():
        for key in (*ARRAY_KEYS, NEXT_OBSERVATIONS):
            np.testing.assert_array_equal(np.asarray(getattr(history, key)), np.asarray(getattr(rerun[name], key)),
                                          err_msg=f"{name}: {key}")


@pytest.fixture(scope="module")
def trained_straight(tiny_histories, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight-run")
    subprocess.run(cli(*TRAIN, str(tiny_histories[0]), "--out", str(out)), check=True, capture_output=True)
    return out / "checkpoint.pt"


@pytest.mark.parametrize("trial", range(2))
def test_a_training_run_killed_anywhere_resumes_to_the_uninterrupted_weights(trial, tiny_histories, trained_straight,
                                                                             tmp_path):
    argv = cli(*TRAIN, str(tiny_histories[0]), "--out", str(tmp_path))
    assert_all_exit(kill_at_random(argv, trial, earliest=4, latest=10))
    if (tmp_path / "checkpoint.pt").exists():
        load_checkpoint(tmp_path / "checkpoint.pt")  # whole, whenever the kill came
    subprocess.run(argv, check=True, capture_output=True)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    (straight_meta, straight), (meta, resumed) = load_checkpoint(trained_straight), load_checkpoint(tmp_path / "checkpoint.pt")
    assert meta["finished"] and meta["update"] == straight_meta["update"] == 200
    for name, weights in straight["model"].items():
        assert torch.equal(weights, resumed["model"][name]), name
