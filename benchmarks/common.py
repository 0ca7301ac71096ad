"""What every benchmark script shares: where results go, one file name per family, and how a
result is written (markdown for people, the curves as data for `paper.py` and anyone else).

    save_results("darkroom_default", markdown, {"AD": returns, ...})
    -> benchmarks/results/darkroom_default.md and darkroom_default.npz, each written atomically

A curve is a ``(rows, episodes)`` array of returns: one row per task x seed (task-major, as
`ad_gym.evaluation.play_episodes` returns them), or one per source learner.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ad_gym.atomic import atomic_write

RESULTS = Path(__file__).parent / "results"
# Where results go when not benchmarks/results (`paper.py --quick` sets it for its scripts).
_ENV = "AD_GYM_BENCH_RESULTS"


def results_dir() -> Path:
    return Path(os.environ.get(_ENV) or RESULTS)


def use_quick_results() -> Path:
    """Smoke runs never overwrite the committed results: they write to $AD_GYM_BENCH_RESULTS, or
    to runs/quick-results."""
    os.environ.setdefault(_ENV, str(Path("runs/quick-results").resolve()))
    return results_dir()
NAMES = {"DarkRoom-v0": "darkroom", "DarkRoomHard-v0": "darkroomhard", "DarkKeyToDoor-v0": "keytodoor",
         "DarkKeyToDoor-v1": "keytodoor_v1", "AdversarialBandit-v0": "bandit", "Watermaze-v0": "watermaze",
         "Watermaze-v1": "watermaze_v1"}


def family_name(env_id: str) -> str:
    return NAMES.get(env_id, env_id.lower().replace("-", "_"))


def save_results(name: str, markdown: str, curves: dict[str, np.ndarray] | None = None,
                 meta: dict | None = None) -> Path:
    """Write ``results/<name>.md`` and, with curves, ``results/<name>.npz`` (one array per row
    label, plus ``__meta__``: a JSON string with ``meta``, e.g. the number of tasks)."""
    results = results_dir()
    if curves is not None:
        arrays = {label: np.asarray(c, dtype=np.float32) for label, c in curves.items()}
        arrays["__meta__"] = np.array(json.dumps(meta or {}))
        atomic_write(results / f"{name}.npz", lambda f: np.savez_compressed(f, **arrays))
    return atomic_write(results / f"{name}.md", lambda f: f.write(markdown.encode()))


def save_plot(name: str, curves: dict[str, np.ndarray], title: str) -> Path:
    """``results/<name>.png``: `ad_gym.evaluation.plot_curves`, written atomically."""
    from ad_gym.evaluation import plot_curves

    return atomic_write(results_dir() / f"{name}.png", lambda f: plot_curves(curves, f, title))


def load_results(name: str, results: Path | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The curves and meta a benchmark saved under ``name`` (no pickles: plain arrays and JSON)."""
    path = (results or results_dir()) / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the benchmark that writes it first")
    with np.load(path, allow_pickle=False) as data:
        curves = {key: data[key].astype(np.float64) for key in data.files if key != "__meta__"}
        meta = json.loads(str(data["__meta__"])) if "__meta__" in data.files else {}
    return curves, meta


def episode_steps(env_id: str) -> int:
    """Steps per episode of a family (its envs' ``max_steps``)."""
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        return int(env.spec.max_episode_steps or env.unwrapped.max_steps)
    finally:
        env.close()


def default_ad(env_id: str, quick: bool = False, method: str = "AD"):
    """The family's default preset and its AD method (or the method named ``method``), smoke-sized
    with ``quick`` (whose results then go to the quick-results folder): the experiments that vary
    AD alone start here."""
    from ad_gym.pipeline import get_preset

    preset = get_preset(env_id, "default")
    if quick:
        use_quick_results()
        preset = quick_preset(preset)
    found = [m for m in preset.methods if m.name == method]
    if not found:
        raise ValueError(f"{env_id}'s default preset has no method {method!r}; it has {[m.name for m in preset.methods]}")
    return preset, found[0]


def apart(high: tuple[float, float], low: tuple[float, float]) -> bool:
    """Whether ``high`` (mean, half-width) is above ``low`` with their 95% intervals apart."""
    return high[0] - high[1] > low[0] + low[1]


def rise(returns: np.ndarray, late: tuple[int, int], early: tuple[int, int] = (1, 5)):
    """The mean return ± half-width over the ``early`` and ``late`` episodes (1-based, both ends
    included), and whether the late block is above the early one with the intervals apart."""
    from ad_gym.evaluation import block_means

    first, last = block_means(returns, *early), block_means(returns, *late)
    return first, last, apart(last, first)


def quick_preset(preset):
    """A smoke-sized copy of a preset: 4 train tasks, 2 held-out, one seed, 10 episodes, every
    method's training cut to 20 updates (RL²: one rollout, 3200 env steps). For checking a benchmark end to
    end in minutes, never for figures."""
    methods = []
    for method in preset.methods:
        config = getattr(method, "config", None)
        if hasattr(config, "updates"):
            method = dataclasses.replace(method, config=dataclasses.replace(config, updates=20, warmup=5, eval_every=10))
        elif hasattr(config, "total_steps"):
            # One rollout of 16 trials (RL²'s default plays 128 per rollout).
            method = dataclasses.replace(method, config=dataclasses.replace(config, total_steps=3200, n_envs=16))
        methods.append(method)
    return dataclasses.replace(preset, methods=tuple(methods), train_tasks=4, test_tasks=2, eval_episodes=10,
                               eval_seeds=(0,), train_learners=1)
