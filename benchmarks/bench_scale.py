"""What it costs to grow past one process: collection on a process pool and on Ray, training on
torchrun ranks, training memory against the dataset's size, and a paper-scale projection.

    python benchmarks/bench_scale.py             # ~15 minutes on 2 cores
    python benchmarks/bench_scale.py --tasks 8   # a quicker, rougher run

Measures, on this machine:
1. collection throughput (Dark Room, the default A2C source) of the local process pool and of a
   local Ray cluster, at 1 and 2 workers (Ray: the `ray` extra; its rows are left out without it);
2. training updates/s of the Dark Room AD model at 1 and 2 torchrun ranks (gloo) on the CPU, at
   the same global batch;
3. peak memory of a training process on 1x, 4x and 16x the Dark Room default preset's training
   data, tokens in memory and on disk (`data_in=disk`);
4. from these, the projected cost of a paper-scale collection (2000 histories of 1e7 steps).

Writes benchmarks/results/scale.md and scale.json. Compare figures of one run with each other.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

import ad_gym
from ad_gym.atomic import atomic_write
from ad_gym.pipeline import get_preset
from ad_gym.sources.collect import collect

sys.path.insert(0, str(Path(__file__).parent))
from common import results_dir  # noqa: E402

ENV_ID = "DarkRoom-v0"
TRAIN_SETTINGS = {"updates": 60, "eval_every": 20, "checkpoint_every": 1000, "batch_size": 16}


def fresh(folder: Path) -> Path:
    """An empty folder: a measurement never resumes (and so skips) an earlier run's work."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def collection_rates(scratch: Path, tasks: int) -> list[dict]:
    """Env steps/s of collecting ``tasks`` train tasks, per backend and worker count (the time of
    the whole call: a Ray cluster's start included)."""
    source = get_preset(ENV_ID, "default").source
    backends = ["local"]
    try:
        import ray  # noqa: F401

        backends.append("ray")
    except ImportError:
        print("Ray is not installed (pip install -e '.[ray]'): its rows are left out")
    rows = []
    for backend in backends:
        for workers in (1, 2):
            out = fresh(scratch / f"collect-{backend}-{workers}")
            start = time.perf_counter()
            results = collect(ENV_ID, out, config=source, max_tasks=tasks, workers=workers, backend=backend, progress=False)
            seconds = time.perf_counter() - start
            steps = sum(r.steps for r in results)
            rows.append({"backend": backend, "workers": workers, "tasks": tasks, "seconds": round(seconds, 1),
                         "steps_per_s": round(steps / seconds)})
            print(rows[-1])
    return rows


def train_command(histories: list[Path], out: Path, settings: dict, ranks: int = 1) -> list[str]:
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 \
        else [sys.executable]
    command = launch + ["-m", "ad_gym", "train", *map(str, histories), "--out", str(out), "--no-progress"]
    return command + [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def run_measured(command: list[str]) -> tuple[float, float]:
    """Run a command; its wall seconds and the peak resident memory (GiB) of the process it starts."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def updates_per_second(out: Path) -> float:
    """From the training log: the rate between the first and the last logged row (start-up excluded)."""
    with open(out / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    first, last = rows[0], rows[-1]
    return (int(last["update"]) - int(first["update"])) / (float(last["seconds"]) - float(first["seconds"]))


def ddp_rates(histories: Path, scratch: Path) -> list[dict]:
    rows = []
    for ranks in (1, 2):
        out = fresh(scratch / f"ddp-{ranks}")
        seconds, _ = run_measured(train_command([histories], out, TRAIN_SETTINGS, ranks))
        rows.append({"ranks": ranks, "global_batch": TRAIN_SETTINGS["batch_size"], "updates_per_s": round(updates_per_second(out), 3),
                     "seconds": round(seconds, 1)})
        print(rows[-1])
    return rows


def memory_rows(histories: Path, scratch: Path) -> list[dict]:
    rows = []
    for copies in (1, 4, 16):
        for data_in in ("memory", "disk"):
            out = fresh(scratch / f"memory-{data_in}-{copies}")
            settings = {**TRAIN_SETTINGS, "updates": 20, "threads": 2, "data_in": data_in}
            seconds, peak = run_measured(train_command([histories] * copies, out, settings))
            rows.append({"data": f"{copies}x", "data_in": data_in, "peak_gib": round(peak, 3), "seconds": round(seconds, 1)})
            print(rows[-1])
    return rows


def projection(rates: list[dict]) -> list[dict]:
    """Hours to collect 2000 histories of 1e7 env steps at the measured per-worker rate."""
    best = max((r for r in rates if r["workers"] == 1), key=lambda r: r["steps_per_s"])
    total = 2000 * 1e7
    return [{"workers": n, "hours": round(total / (best["steps_per_s"] * n * 0.9) / 3600, 1)} for n in (2, 64, 512, 4096)]


def markdown(command: str, collection, ddp, memory, projected, gpu_note: str) -> str:
    lines = [f"# Scaling up: collection, data-parallel training, memory\n", f"Command: `{command}`\n",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch "
             f"{torch.__version__}, ad_gym {ad_gym.__version__}. Source: the Dark Room default preset's A2C.\n",
             "## Collection throughput\n", "| backend | workers | tasks | seconds | env steps/s | vs 1 worker |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in collection:
        one = next(r for r in collection if r["backend"] == row["backend"] and r["workers"] == 1)
        lines.append(f"| {row['backend']} | {row['workers']} | {row['tasks']} | {row['seconds']} | {row['steps_per_s']:,} | "
                     f"{row['steps_per_s'] / one['steps_per_s']:.2f}x |")
    lines += ["\nEach row's time is the whole call, a Ray cluster's start included.\n",
              "## Training on torchrun ranks (CPU, gloo)\n",
              "| ranks | global batch | updates/s | vs 1 rank |", "| --- | --- | --- | --- |"]
    for row in ddp:
        lines.append(f"| {row['ranks']} | {row['global_batch']} | {row['updates_per_s']} | "
                     f"{row['updates_per_s'] / ddp[0]['updates_per_s']:.2f}x |")
    lines += ["\nOne rank uses both cores' threads, two ranks one thread each; the Dark Room AD model "
              "(4 layers, width 64, context 200).\n", "## Training peak memory against the dataset\n",
              "| data (x the default preset's training histories) | tokens in | peak GiB | vs 1x |", "| --- | --- | --- | --- |"]
    for row in memory:
        one = next(r for r in memory if r["data_in"] == row["data_in"] and r["data"] == "1x")
        lines.append(f"| {row['data']} | {row['data_in']} | {row['peak_gib']} | {row['peak_gib'] / one['peak_gib']:.2f}x |")
    lines += ["\nPeak resident memory of the training process (`ru_maxrss`), 20 updates; 4x and 16x list "
              "the same folder 4 and 16 times.\n", "## A paper-scale collection, projected\n",
              "2000 histories of 1e7 env steps each (the paper's Key-to-Door scale), at the best measured rate "
              "of one worker and 90% efficiency:\n", "| workers | hours |", "| --- | --- |"]
    lines += [f"| {row['workers']} | {row['hours']:,} |" for row in projected]
    lines += [f"\n## GPU\n\n{gpu_note}\n"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=32, help="tasks per collection measurement (default: 32)")
    parser.add_argument("--scratch", type=Path, default=Path("runs/bench-scale"), help="where the histories and runs go")
    parser.add_argument("--histories", type=Path, help="the Dark Room default train histories, if collected already "
                        "(default: collected into SCRATCH/train)")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    histories = args.histories
    if histories is None:
        histories = args.scratch / "train"
        print("collecting the Dark Room default preset's training histories ...")
        collect(ENV_ID, histories, config=get_preset(ENV_ID, "default").source)
    collection = collection_rates(args.scratch, args.tasks)
    ddp = ddp_rates(histories, args.scratch)
    memory = memory_rows(histories, args.scratch)
    projected = projection(collection)
    gpu_note = ("A GPU: " + torch.cuda.get_device_name(0)) if torch.cuda.is_available() else \
        "No GPU on this machine: updates/s on a GPU at batch 16 and 512 were not measured."
    command = "python benchmarks/bench_scale.py " + shlex.join(sys.argv[1:])
    text = markdown(command.strip(), collection, ddp, memory, projected, gpu_note)
    results = results_dir()
    atomic_write(results / "scale.md", lambda f: f.write(text.encode()))
    data = {"collection": collection, "ddp": ddp, "memory": memory, "projection": projected, "gpu": gpu_note}
    atomic_write(results / "scale.json", lambda f: f.write(json.dumps(data, indent=1).encode()))
    print(text)


if __name__ == "__main__":
    main()
