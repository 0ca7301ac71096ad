"""The whole pipeline for one env, from a named preset (`ad_gym.presets`):

    collect the source's histories (train and held-out tasks) and what each method asks for
    -> train each method of the preset -> evaluate every one in context -> leaderboard

It knows methods only through `ad_gym.methods.Method`. Every stage writes under one folder and
resumes: rerunning a pipeline skips what is finished.

    run_pipeline("DarkRoom-v0", "default", "runs/darkroom")
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ad_gym.agents import RandomAgent, oracle_for
from ad_gym.atomic import atomic_write
from ad_gym.data.histories import load_histories
from ad_gym.envs.tasks import canonical_env_id, family, tasks
from ad_gym.evaluation import (
    iqm_table, leaderboard_data, leaderboard_table, learner_episode_returns, normalised_table, play_episodes, plot_curves,
)
from ad_gym.methods import Collection, RunData, load_agent
from ad_gym.presets import PRESETS, Preset, get_preset
from ad_gym.sources.collect import collect
from ad_gym.stages import StageMeter, available_cores
from ad_gym.version import __version__

__all__ = ["PRESETS", "PipelineResult", "Preset", "get_preset", "run_pipeline"]


@dataclass
class PipelineResult:
    curves: dict[str, np.ndarray]  # row label -> (rows, episodes) returns on the held-out "test" tasks
    table: str  # markdown: every evaluation split's table (and normalised scores for bandits)
    seconds: dict[str, float] = field(default_factory=dict)
    out: Path | None = None
    curves_by_split: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    peak_gib: dict[str, float] = field(default_factory=dict)  # peak resident memory per stage
    methods: tuple[str, ...] = ()  # the labels of the trained methods' rows, in preset order
    source: str = ""  # the label of the source's own row
    side_by_side: dict[str, float] = field(default_factory=dict)  # seconds of the methods trained side by side


def run_pipeline(
    env_id: str,
    preset: str | Preset = "default",
    out: str | os.PathLike | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> PipelineResult:
    env_id = canonical_env_id(env_id)
    preset_name = preset if isinstance(preset, str) else "custom"
    preset = get_preset(env_id, preset) if isinstance(preset, str) else preset
    out = Path(out or f"runs/{env_id}-{preset_name}")
    eval_splits = family(env_id).eval_splits
    meter = StageMeter()

    histories = out / "histories"
    train_dirs = [histories / ("train" if k == 0 else f"train-learner{k + 1}") for k in range(preset.train_learners)]
    with meter.stage("collect source"):
        for learner, folder in enumerate(train_dirs):
            collect(
                env_id, folder, split="train", config=preset.source, seed=seed + learner, max_tasks=preset.train_tasks,
                workers=workers, progress=progress,
            )
        for split in eval_splits:
            collect(
                env_id, histories / split, split=split, config=preset.source, seed=seed,
                max_tasks=preset.test_tasks, workers=workers, progress=progress,
            )
    data = RunData(env_id, source_train=train_dirs, source_test=histories / "test")
    for collection in method_collections(preset):
        with meter.stage(f"collect {collection.name}"):
            for split in collection.splits:
                folder = data.collections[(collection.name, split)] = histories / f"{collection.name}-{split}"
                collect(
                    env_id, folder, split=split, config=collection.source, seed=seed,
                    max_tasks=(collection.train_tasks or preset.train_tasks) if split == "train" else preset.test_tasks,
                    workers=workers, progress=progress,
                )

    for method in preset.methods:
        method.check(data)  # fail before any training when a method's data cannot be trained on
    provenance = {"pipeline": {"env_id": env_id, "preset": preset_name, "seed": seed}}
    checkpoints = train_methods(preset.methods, data, out, seed, progress, provenance, meter, workers)

    with meter.stage("evaluate"):
        curves_by_split = {
            split: evaluate_methods(env_id, checkpoints, histories / split, preset, split, progress=progress)
            for split in eval_splits
        }
    seconds = meter.seconds
    source = source_label(preset.source.algo)
    n_tasks = {split: len(tasks(env_id, split)[: preset.test_tasks]) for split in curves_by_split}
    table = leaderboard_tables(env_id, curves_by_split, source, n_tasks)
    write_results(out, env_id, preset_name, preset, seed, curves_by_split, n_tasks, table, meter)
    return PipelineResult(
        curves=curves_by_split["test"], table=table, seconds=seconds, out=out, curves_by_split=curves_by_split,
        peak_gib=meter.peak_gib, methods=tuple(checkpoints), source=source, side_by_side=meter.side_by_side,
    )


def core_slots(n_methods: int, workers: int | None) -> list[tuple[int, ...]]:
    """The cores each side-by-side training process gets: the available cores split evenly
    between ``min(workers, n_methods)`` processes (``workers`` default: one per core)."""
    cores = available_cores()
    n = min(len(cores) if workers is None else workers, n_methods, len(cores))
    return [tuple(cores[i::n]) for i in range(max(n, 1))]


def train_methods(methods, data: RunData, out: Path, seed: int, progress: bool, provenance: dict, meter: StageMeter,
                  workers: int | None = None) -> dict[str, Path]:
    """Train every method into ``out/<slug>``; returns each one's checkpoint by name.

    With several cores, methods train side by side, each process pinned to its share of the
    cores: these models are small, and two one-thread trainings do more updates per second in
    all than one two-thread training (benchmarks/results/parallel_training.md). A method's
    result depends on its number of threads, so a run is reproducible for a given number of
    cores per method. ``workers=1`` trains one method at a time on every core.
    """
    slots = core_slots(len(methods), workers)
    if len(slots) == 1 or not _worth_splitting(methods):
        checkpoints = {}
        for method in methods:
            with meter.stage(f"train {method.name}"):
                checkpoints[method.name] = method.train(data, out / method.slug, seed=seed, progress=progress,
                                                        provenance=provenance)
        return checkpoints
    context = get_context("spawn")
    free = context.Queue()
    for position, cores in enumerate(slots):
        free.put((position, cores))
    checkpoints, seconds = {}, {}
    with meter.stage(f"train {len(methods)} methods, {len(slots)} side by side"):
        with ProcessPoolExecutor(len(slots), mp_context=context, initializer=_take_cores, initargs=(free, os.getpid())) as pool:
            futures = {pool.submit(_train_one, method, data, out / method.slug, seed, progress, provenance): method
                       for method in _longest_first(methods)}
            try:
                for future in as_completed(futures):
                    checkpoints[futures[future].name], seconds[futures[future].name] = future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    for method in methods:
        meter.side_by_side[f"train {method.name}"] = seconds[method.name]
    return {method.name: checkpoints[method.name] for method in methods}


def _longest_first(methods):
    """Start the methods with the most work first, so the last one to finish starts early."""
    return sorted(methods, key=lambda m: m.work(), reverse=True)


def _worth_splitting(methods) -> bool:
    """Side by side pays when the work spreads over the processes: one thread per core does
    1.28x the updates of one training on two, but a core whose methods are done sits idle. With
    the longest method over 60% of all the work (AD and a short ED), one at a time is faster."""
    work = [m.work() for m in methods]
    return max(work) <= 0.6 * sum(work)


def _take_cores(free, parent: int) -> None:
    """In a training process: pin it to its share of the cores (one torch thread per core) and
    give its progress bars their own line."""
    import torch

    from ad_gym import stages

    stages.exit_with_parent(parent)
    position, cores = free.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores))
    stages.BAR_POSITION = position


def _train_one(method, data, out, seed, progress, provenance) -> tuple[Path, float]:
    start = time.perf_counter()
    path = method.train(data, out, seed=seed, progress=progress, provenance=provenance)
    return path, time.perf_counter() - start


def method_collections(preset: Preset) -> list[Collection]:
    """The histories the preset's methods ask for, each once; one name must mean one source."""
    by_name: dict[str, Collection] = {}
    for method in preset.methods:
        for collection in method.collections():
            known = by_name.setdefault(collection.name, collection)
            if (known.source, known.train_tasks) != (collection.source, collection.train_tasks):
                raise ValueError(f"two methods ask for histories named {collection.name!r} with different sources or train_tasks")
            if known.splits != collection.splits:
                by_name[collection.name] = dataclasses.replace(known, splits=tuple(dict.fromkeys(known.splits + collection.splits)))
    return list(by_name.values())


def source_label(algo: str) -> str:
    return f"source ({algo.upper()}, from scratch)"


def evaluate_methods(
    env_id, checkpoints: dict[str, Path], histories_dir, preset: Preset, split: str = "test", progress=False
) -> dict[str, np.ndarray]:
    """Returns per episode on ``split`` of every trained method, the source learning from scratch,
    random and oracle."""
    eval_tasks = tasks(env_id, split)[: preset.test_tasks]
    n, seeds = preset.eval_episodes, list(preset.eval_seeds)
    curves = {}
    for name, path in checkpoints.items():
        agent = load_agent(path, env_id=env_id, seed=0)
        curves[name] = play_episodes(lambda rows: agent, env_id, eval_tasks, n, seeds, progress=progress)
    source = [learner_episode_returns(h) for h in load_histories(histories_dir, env_id=env_id, compact=True)]
    width = min(n, min(s.shape[1] for s in source))
    curves[source_label(preset.source.algo)] = np.concatenate([s[:, :width] for s in source])
    curves["random"] = play_episodes(lambda rows: RandomAgent.for_env(env_id, seed=0), env_id, eval_tasks, n, seeds)
    curves["oracle (task known)"] = play_episodes(lambda rows: oracle_for(env_id, rows), env_id, eval_tasks, n, seeds)
    return curves


def leaderboard_tables(env_id: str, curves_by_split: dict[str, dict[str, np.ndarray]], source: str,
                       n_tasks: dict[str, int]) -> str:
    """One returns table per evaluation split, then the interquartile means with their stratified
    bootstrap intervals (``n_tasks``: the tasks of each split the rows belong to); bandits add
    scores normalised against UCB and random."""
    iqm_title = "Interquartile mean [95% stratified bootstrap interval] over tasks x seeds"
    if list(curves_by_split) == ["test"]:
        return "\n\n".join([leaderboard_table(curves_by_split["test"]), f"{iqm_title}:", iqm_table(curves_by_split["test"], n_tasks["test"])])
    parts = []
    for split, curves in curves_by_split.items():
        parts += [f"**{split}** tasks: returns", "", leaderboard_table(curves), ""]
        parts += [f"**{split}** tasks: {iqm_title[0].lower()}{iqm_title[1:]}", "", iqm_table(curves, n_tasks[split]), ""]
        parts += [f"**{split}** tasks: score normalised as (r - random) / ({source} - random)", "",
                  normalised_table(curves, source), ""]
    return "\n".join(parts).rstrip()


def write_results(out: Path, env_id: str, preset_name: str, preset: Preset, seed: int, curves_by_split,
                  n_tasks: dict[str, int], table: str, meter: StageMeter) -> None:
    """The run's results, each file written atomically: leaderboard.md and leaderboard.json (the
    same figures as data, with the settings that made them), returns per split (.npz, .png),
    timing.json."""
    for split, curves in curves_by_split.items():
        suffix = "" if split == "test" else f"_{split}"
        atomic_write(out / f"returns{suffix}.npz", lambda f, curves=curves: np.savez_compressed(f, **curves))
        atomic_write(out / f"returns{suffix}.png", lambda f, curves=curves, split=split: plot_curves(
            curves, f, f"{env_id}, {split} tasks, preset {preset_name}"))
    text = f"# {env_id}: in-context returns on held-out tasks\n\n{table}\n\nCost: {meter.summary()}\n"
    atomic_write(out / "leaderboard.md", lambda f: f.write(text.encode()))
    data = {
        "env_id": env_id, "preset": preset_name, "settings": preset.to_dict(), "seed": seed, "ad_gym_version": __version__,
        "splits": {split: {"tasks": n_tasks[split], "methods": leaderboard_data(curves, n_tasks[split])}
                   for split, curves in curves_by_split.items()},
        "seconds": meter.seconds,
    }
    atomic_write(out / "leaderboard.json", lambda f: f.write(json.dumps(data, indent=1).encode()))
    timing = json.dumps({"seconds": meter.seconds, "peak_gib": meter.peak_gib, "side_by_side": meter.side_by_side}, indent=2)
    atomic_write(out / "timing.json", lambda f: f.write(timing.encode()))
