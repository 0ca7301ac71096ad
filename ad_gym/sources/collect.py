"""Collect learning histories for every task of a split, in parallel, resumably.

Layout of an output folder::

    DIR/collection.json     what is being collected: env id, split, source settings, seed
    DIR/goal-0-1.npz        one history file per finished task (see ad_gym.data.histories)
    ...

A task is finished when its file exists under its final name (files are renamed into place
only once complete), so a rerun with the same settings skips finished tasks and redoes the rest.
A folder that holds another env's or another setting's histories is refused, never mixed.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ad_gym.atomic import atomic_write, remove_orphaned_temps
from ad_gym.checkpoints import as_json
from ad_gym.data.histories import SUFFIX, HistoryFileError, read_history, save_history
from ad_gym.envs.tasks import canonical_env_id, family, task_key
from ad_gym.sources.sb3 import SourceConfig, learn_task, validate_source
from ad_gym.stages import available_cores, exit_with_parent

MANIFEST = "collection.json"
BACKENDS = ("local", "ray")


@dataclass
class TaskResult:
    task: dict[str, Any]
    path: Path
    steps: int  # env steps over all streams
    seconds: float
    skipped: bool  # True: already collected by an earlier run


def collect(
    env_id: str,
    out: str | os.PathLike,
    split: str = "train",
    config: SourceConfig | None = None,
    seed: int = 0,
    max_tasks: int | None = None,
    workers: int | None = None,
    progress: bool = True,
    sb3_log_dir: str | os.PathLike | None = None,
    backend: str = "local",
    address: str | None = None,
) -> list[TaskResult]:
    """Train a source learner on each task of ``split`` and store its history under ``out``.

    ``workers`` processes run tasks in parallel (default: every core); each learner uses one
    torch thread. With ``sb3_log_dir``, each SB3 learner keeps its own logs in
    ``sb3_log_dir/<task>/`` (progress.csv; TensorBoard too when installed). Returns one
    `TaskResult` per task, in task order.

    ``backend="ray"`` sends each task to a Ray cluster instead (``pip install -e ".[ray]"``): a
    local one of ``workers`` CPUs, or the running cluster at ``address`` (e.g. "auto", or
    "ray://head:10001"), one CPU per task, its nodes having ad_gym installed. The learners return
    their histories and this process writes the files, so the folder is the same as the local
    backend's, arrays byte for byte, and resumes alike.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if address is not None and backend != "ray":
        raise ValueError(f"address {address!r} is a Ray cluster's: use it with backend='ray'")
    env_id = canonical_env_id(env_id)
    config = config or SourceConfig(algo=family(env_id).default_source)
    tasks = family(env_id).split(split)
    if max_tasks is not None:
        if not isinstance(max_tasks, int) or max_tasks < 1:
            raise ValueError(f"max_tasks must be a positive integer, got {max_tasks!r}")
        tasks = tasks[:max_tasks]
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")

    validate_source(env_id, config)  # bad hyperparameter values fail here, before the folder is touched
    out = Path(out)
    _claim_folder(out, {"env_id": env_id, "split": split, "seed": int(seed), "source": config.to_dict()})
    remove_orphaned_temps(out)  # left by a collect killed mid-write
    results: dict[str, TaskResult] = {}
    pending = []
    for task in tasks:
        path = out / f"{task_key(task)}{SUFFIX}"
        if _is_finished(path):
            results[task_key(task)] = TaskResult(task, path, 0, 0.0, skipped=True)
        else:
            pending.append((task, path))

    bar = tqdm(total=len(tasks), initial=len(results), desc=f"collect {env_id}", unit="task", disable=not progress)
    start, steps_done = time.perf_counter(), 0
    logs = None if sb3_log_dir is None else Path(sb3_log_dir)
    jobs = [(task, path, None if logs is None else logs / task_key(task)) for task, path in pending]
    run = _run_on_ray(env_id, jobs, config, seed, workers, address) if backend == "ray" else _run(env_id, jobs, config, seed, workers)
    for result in run:
        results[task_key(result.task)] = result
        steps_done += result.steps
        bar.set_postfix_str(f"{steps_done / (time.perf_counter() - start):,.0f} env steps/s")
        bar.update()
    bar.close()
    return [results[task_key(task)] for task in tasks]


def default_workers() -> int:
    return len(available_cores())


def _run(env_id, pending, config, seed, workers):
    if workers == 1 or len(pending) <= 1:
        for task, path, log_dir in pending:
            yield _collect_task(env_id, task, path, config, seed, log_dir)
        return
    # spawn: each worker starts clean (no forked torch thread pools), on every platform.
    with ProcessPoolExecutor(max_workers=min(workers, len(pending)), mp_context=get_context("spawn"),
                             initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_collect_task, env_id, task, path, config, seed, log_dir) for task, path, log_dir in pending}
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_on_ray(env_id, pending, config, seed, workers, address):
    """The tasks as Ray tasks, one CPU each; each finished history is written here as it arrives."""
    try:
        import ray
    except ImportError as exc:
        raise ValueError('backend="ray" needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.9")') from exc
    if not pending:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    learn = ray.remote(num_cpus=1, max_retries=0)(_learn)
    refs = {learn.remote(env_id, task, config, seed, log_dir): (task, path) for task, path, log_dir in pending}
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                task, path = refs.pop(ref)
                history, seconds = ray.get(ref)
                save_history(history, path)
                yield TaskResult(task, path, history.n_steps * history.n_streams, seconds, skipped=False)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


def _learn(env_id: str, task: dict[str, Any], config: SourceConfig, seed: int, sb3_log_dir: Path | None = None):
    """One task's history and the seconds it took."""
    import torch

    # One thread per learner: the networks are tiny, and parallelism comes from the processes.
    torch.set_num_threads(1)
    start = time.perf_counter()
    history = learn_task(env_id, task, config, seed=seed, sb3_log_dir=sb3_log_dir)
    return history, time.perf_counter() - start


def _collect_task(env_id: str, task: dict[str, Any], path: Path, config: SourceConfig, seed: int,
                  sb3_log_dir: Path | None = None) -> TaskResult:
    history, seconds = _learn(env_id, task, config, seed, sb3_log_dir)
    save_history(history, path)
    return TaskResult(task, path, history.n_steps * history.n_streams, seconds, skipped=False)


def _is_finished(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        read_history(path)
    except HistoryFileError:
        return False  # unreadable: collect it again (the new file replaces it atomically)
    return True


def _claim_folder(out: Path, manifest: dict[str, Any]) -> None:
    """Make ``out`` a collection folder for ``manifest``, or refuse if it holds something else."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; expected a folder for history files")
    manifest_path = out / MANIFEST
    manifest = as_json(manifest)
    if manifest_path.exists():
        try:
            existing = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{str(manifest_path)!r} is not valid JSON ({exc}); repair or remove it, or choose another --out") from exc
        if not isinstance(existing, dict):
            raise ValueError(f"{str(manifest_path)!r} is not a JSON object; repair or remove it, or choose another --out")
        finished_any = any(out.glob(f"*{SUFFIX}"))
        if not finished_any:
            existing = manifest  # nothing was collected under the old settings (a run that failed at once)
        if existing.get("env_id") != manifest["env_id"]:
            raise ValueError(
                f"{str(out)!r} holds {existing.get('env_id')} histories, not {manifest['env_id']}; "
                "choose another --out folder"
            )
        changed = sorted(k for k in manifest if existing.get(k) != manifest[k])
        if changed:
            raise ValueError(
                f"{str(out)!r} holds {manifest['env_id']} histories collected with other settings "
                f"({', '.join(f'{k}: {existing.get(k)!r}' for k in changed)}); resume with the same "
                "settings or choose another --out folder"
            )
        if finished_any:
            return
    if out.is_dir():
        # No manifest (files copied on their own, say): each file's metadata says how it was made.
        for path in sorted(out.glob(f"*{SUFFIX}")):
            try:
                meta = read_history(path).metadata
            except HistoryFileError:
                continue  # unreadable: it will be collected again
            if meta.get("env_id") != manifest["env_id"]:
                raise ValueError(
                    f"{str(out)!r} holds {meta.get('env_id')} histories, not {manifest['env_id']}; choose another --out folder"
                )
            if meta.get("source") != manifest["source"] or meta.get("seed") != manifest["seed"]:
                raise ValueError(
                    f"{str(out)!r} holds {manifest['env_id']} histories collected with other settings ({path.name}: "
                    f"source {meta.get('source')!r}, seed {meta.get('seed')!r}); choose another --out folder"
                )
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(manifest_path, lambda f: f.write(text.encode()))
