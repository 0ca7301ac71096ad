"""In-context evaluation: play many consecutive episodes per task and record each one's return.

The context is never cleared between the episodes of a task: an in-context learner should get
better episode after episode, with frozen weights.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm


def play_episodes(
    make_agent: Callable[[list[dict[str, Any]]], Any],
    env_id: str,
    tasks: list[dict[str, Any]],
    n_episodes: int,
    seeds: list[int] = (0,),
    progress: bool = False,
    on_step: Callable[[int, int, gym.Env, float, bool], None] | None = None,
    prompt: Callable[[list[dict[str, Any]]], dict[str, np.ndarray]] | None = None,
) -> np.ndarray:
    """Returns ``(len(tasks) * len(seeds), n_episodes)`` episode returns, rows task-major.

    ``make_agent(row_tasks)`` builds the agent for the batch (it may use the tasks, like an
    oracle); it must offer ``predict(obs, state, episode_start)`` and
    ``observe(reward, done, next_obs=...)`` (next_obs: what each step returned, before a reset).
    All envs step in lockstep; an env that finished its episodes keeps playing unrecorded.
    ``on_step(row, episode, env, reward, done)``, if given, sees every recorded step before an
    ending episode's env is reset (probes read the env's state there, e.g. the agent's cell).
    ``prompt(row_tasks)``, if given, returns the keywords of ``agent.prompt`` (``observations``,
    ``actions``, ``rewards``, ``dones`` of ``(rows, T, ...)``: `ad_gym.prompts.stack_prompts`),
    put into the agent's context before it acts.
    """
    rows = [(task, seed) for task in tasks for seed in seeds]
    envs = [gym.make(env_id, **task) for task, _ in rows]
    obs = np.stack([env.reset(seed=1000 * seed + i)[0] for i, (env, (_, seed)) in enumerate(zip(envs, rows))])
    agent = make_agent([task for task, _ in rows])
    returns = np.zeros((len(rows), n_episodes))
    episode = np.zeros(len(rows), dtype=np.int64)
    episode_start = np.ones(len(rows), dtype=bool)
    if prompt is not None:
        state = agent.prompt(**prompt([task for task, _ in rows]))
    else:  # a fresh context for these rows, asked for explicitly (agents reused across calls)
        state = agent.new_context(len(rows)) if hasattr(agent, "new_context") else None
    bar = tqdm(total=n_episodes, desc="episodes", disable=not progress)
    while episode.min() < n_episodes:
        actions, state = agent.predict(obs, state=state, episode_start=episode_start)
        rewards, dones = np.zeros(len(rows), dtype=np.float32), np.zeros(len(rows), dtype=bool)
        next_obs = obs.copy()
        for i, env in enumerate(envs):
            o, r, terminated, truncated, _ = env.step(int(actions[i]))
            next_obs[i] = o
            rewards[i], dones[i] = r, terminated or truncated
            if episode[i] < n_episodes:
                returns[i, episode[i]] += r
                if on_step is not None:
                    on_step(i, int(episode[i]), env, float(r), bool(dones[i]))
            if dones[i]:
                episode[i] += 1
                o, _ = env.reset()
            obs[i] = o
        agent.observe(rewards, dones, next_obs=next_obs)
        episode_start = dones
        bar.n = int(min(episode.min(), n_episodes))
        bar.refresh()
    bar.close()
    for env in envs:
        env.close()
    return returns


REPORT_EPISODES = (1, 5, 10, 20, 50, 100)


def learner_episode_returns(history) -> np.ndarray:
    """A source learner's own learning curves, ``(learners, episodes)``.

    An SB3 source is one learner fed by all its streams: one row, the returns of all its
    streams' episodes in the order it experienced them (streams step in lockstep, so round by
    round). UCB and the oracle run one independent agent per stream: one row per stream.
    """
    from ad_gym.sources.sb3 import AGENT_SOURCES

    per_stream = history.episode_returns()
    n = min(len(r) for r in per_stream)
    rows = np.stack([r[:n] for r in per_stream])  # (streams, episodes)
    if history.metadata.get("source", {}).get("algo") in AGENT_SOURCES:
        return rows
    return rows.T.reshape(1, -1)  # (1, episodes * streams)


def mean_ci(returns: np.ndarray, episode: int) -> tuple[float, float]:
    """Mean return at a 1-based episode over the rows, and the half-width of its 95% interval."""
    column = returns[:, episode - 1]
    half = 1.96 * column.std(ddof=1) / np.sqrt(len(column)) if len(column) > 1 else float("nan")
    return float(column.mean()), float(half)


def interquartile_mean(values, axis: int = -1) -> np.ndarray:
    """The mean of the middle half (25% trimmed from each end, as ``scipy.stats.trim_mean`` and
    rliable cut it): robust to a few outlying runs, less noisy than the median."""
    ordered = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = ordered.shape[axis]
    cut = int(0.25 * n)
    return np.take(ordered, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def stratified_bootstrap_ci(scores: np.ndarray, statistic=interquartile_mean, reps: int = 2000, level: float = 0.95,
                            seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``scores`` ``(n_tasks, n_runs)``, resampling the runs
    within each task (the stratified bootstrap of Agarwal et al. 2021, rliable's default). With one
    run per task there is nothing to resample within a task, so the tasks are resampled instead."""
    scores = np.asarray(scores, dtype=np.float64)
    n_tasks, n_runs = scores.shape
    rng = np.random.default_rng(seed)
    if n_runs > 1:
        picks = rng.integers(n_runs, size=(reps, n_tasks, n_runs))
        samples = scores[np.arange(n_tasks)[None, :, None], picks].reshape(reps, -1)
    else:
        samples = scores[rng.integers(n_tasks, size=(reps, n_tasks)), 0]
    values = statistic(samples, axis=-1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def iqm_table(curves: dict[str, np.ndarray], n_tasks: int, episodes=REPORT_EPISODES) -> str:
    """Markdown: one row per method, the interquartile mean of the return at each listed episode
    and its 95% stratified bootstrap interval. Rows are task-major (``play_episodes``)."""
    episodes = [e for e in episodes if all(c.shape[1] >= e for c in curves.values())]
    lines = ["| method | " + " | ".join(f"ep {e}" for e in episodes) + " |", "| --- |" + " --- |" * len(episodes)]
    for name, entry in leaderboard_data(curves, n_tasks, episodes).items():
        cells = [f"{c['iqm']:.2f} [{c['low']:.2f}, {c['high']:.2f}]" for c in (entry["iqm"][str(e)] for e in episodes)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def block_means(returns: np.ndarray, first: int, last: int) -> tuple[float, float]:
    """Mean return over 1-based episodes first..last, and the 95% half-width over rows."""
    per_row = returns[:, first - 1 : last].mean(axis=1)
    return float(per_row.mean()), float(1.96 * per_row.std(ddof=1) / np.sqrt(len(per_row)))


def episodes_to_reach(returns: np.ndarray, level: float, window: int = 5) -> int | None:
    """The first 1-based episode by which the mean return over the rows, averaged over the last
    ``window`` episodes (fewer at the start), reaches ``level``; None if it never does. The
    average keeps one lucky episode from counting as having learned."""
    mean = np.asarray(returns, dtype=np.float64).mean(axis=0)
    sums = np.cumsum(np.concatenate([[0.0], mean]))
    ends = np.arange(1, len(mean) + 1)
    trailing = (sums[ends] - sums[np.maximum(ends - window, 0)]) / np.minimum(ends, window)
    hits = np.flatnonzero(trailing >= level)
    return int(hits[0]) + 1 if len(hits) else None


def leaderboard_table(curves: dict[str, np.ndarray], episodes=REPORT_EPISODES) -> str:
    """Markdown: one row per method, mean +- 95% CI of the return at each listed episode."""
    episodes = [e for e in episodes if all(c.shape[1] >= e for c in curves.values())]
    lines = ["| method | " + " | ".join(f"ep {e}" for e in episodes) + " |", "| --- |" + " --- |" * len(episodes)]
    for name, returns in curves.items():
        cells = [f"{m:.2f} ± {h:.2f}" for m, h in (mean_ci(returns, e) for e in episodes)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def leaderboard_data(curves: dict[str, np.ndarray], n_tasks: int, episodes=REPORT_EPISODES) -> dict[str, dict]:
    """The leaderboard as data, per method: its rows, the mean return at every episode and the
    half-width of its 95% interval, and at the listed episodes the interquartile mean with its
    stratified bootstrap interval over tasks x seeds (rows task-major, as `play_episodes` gives)."""
    data = {}
    for name, returns in curves.items():
        if len(returns) % n_tasks:
            raise ValueError(f"{name}: {len(returns)} rows do not divide into {n_tasks} tasks")
        width = returns.shape[1]
        halves = [mean_ci(returns, e)[1] for e in range(1, width + 1)]
        iqm = {}
        for e in (e for e in episodes if e <= width):
            scores = returns[:, e - 1].reshape(n_tasks, -1)
            low, high = stratified_bootstrap_ci(scores)
            iqm[str(e)] = {"iqm": float(interquartile_mean(scores.reshape(-1))), "low": low, "high": high}
        data[name] = {
            "rows": int(len(returns)),
            "mean": [float(m) for m in returns.mean(axis=0)],
            "ci95_half_width": [None if np.isnan(h) else h for h in halves],  # None: a single row
            "iqm": iqm,
        }
    return data


def normalised_scores(
    curves: dict[str, np.ndarray], reference: str, floor: str = "random", pooled: bool = False
) -> dict[str, np.ndarray | float]:
    """(mean r - mean r_floor) / (mean r_reference - mean r_floor) of every method.

    The paper's bandit score: 0 is random play, 1 is the reference (UCB) at the same episode.
    Per episode, or with ``pooled`` one score over all episodes (a ratio of means, so episodes
    where the reference is barely above random do not dominate it).
    """
    width = min(c.shape[1] for c in curves.values())
    axis = None if pooled else 0
    low, high = curves[floor][:, :width].mean(axis=axis), curves[reference][:, :width].mean(axis=axis)
    return {name: (c[:, :width].mean(axis=axis) - low) / (high - low) for name, c in curves.items()}


def normalised_table(curves: dict[str, np.ndarray], reference: str, floor: str = "random", episodes=REPORT_EPISODES) -> str:
    """Markdown: normalised score of each method at the listed episodes and over all of them."""
    scores = normalised_scores(curves, reference, floor)
    pooled = normalised_scores(curves, reference, floor, pooled=True)
    width = len(next(iter(scores.values())))
    episodes = [e for e in episodes if e <= width]
    lines = ["| method | " + " | ".join(f"ep {e}" for e in episodes) + f" | ep 1-{width} pooled |",
             "| --- |" + " --- |" * (len(episodes) + 1)]
    for name, score in scores.items():
        lines.append(f"| {name} | " + " | ".join(f"{score[e - 1]:.2f}" for e in episodes) + f" | {pooled[name]:.2f} |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, np.ndarray], path, title: str) -> None:
    """Mean return per episode with a 95% band, one line per method, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, returns in curves.items():
        x = np.arange(1, returns.shape[1] + 1)
        mean = returns.mean(axis=0)
        half = 1.96 * returns.std(axis=0, ddof=1) / np.sqrt(len(returns)) if len(returns) > 1 else 0 * mean
        ax.plot(x, mean, label=name)
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    ax.set_xlabel("episode (in context, frozen weights)")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)
