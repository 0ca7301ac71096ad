"""Learning curves of recorded histories, as numbers and as a printable table."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ad_gym.data.histories import History


def optimal_return(env_id: str, task: dict) -> float:
    env = gym.make(env_id, **task)
    env.reset(seed=0)
    value = env.unwrapped.optimal_return()
    env.close()
    return value


def learning_curve(histories: list[History], n_blocks: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean return per episode over all tasks and streams, averaged in ``n_blocks`` equal blocks
    of episodes. Returns ``(first_episode_of_each_block, mean_return_of_each_block)``."""
    n_episodes = min(len(r) for h in histories for r in h.episode_returns())
    if n_episodes == 0:
        raise ValueError("the histories hold no complete episode")
    returns = np.stack([r[:n_episodes] for h in histories for r in h.episode_returns()])  # (streams, episodes)
    edges = np.unique(np.linspace(0, n_episodes, min(n_blocks, n_episodes) + 1).astype(int))
    means = np.array([returns[:, a:b].mean() for a, b in zip(edges[:-1], edges[1:])])
    return edges[:-1], means


def summarize(histories: list[History], n_blocks: int = 10, near: float = 0.9) -> str:
    """A text report: the mean learning curve, and how many tasks ended near-optimal (final tenth
    of their episodes at ``near`` x the optimal return or better, averaged over streams)."""
    env_id = histories[0].env_id
    starts, means = learning_curve(histories, n_blocks)
    n_episodes = min(len(r) for h in histories for r in h.episode_returns())
    optimal = np.array([optimal_return(env_id, h.task) for h in histories])
    tail = max(1, n_episodes // 10)
    final = np.array([np.mean([r[n_episodes - tail : n_episodes] for r in h.episode_returns()]) for h in histories])
    streams = sorted({h.n_streams for h in histories})
    lines = [
        f"{env_id}: {len(histories)} tasks, {streams[0] if len(streams) == 1 else streams} streams per task, "
        f"{n_episodes} episodes per stream, source {histories[0].metadata.get('source', {}).get('algo', '?')}",
        "",
        "| episodes | mean return |",
        "| --- | --- |",
    ]
    ends = [*starts[1:], n_episodes]
    lines += [f"| {a + 1}-{b} | {m:.2f} |" for a, b, m in zip(starts, ends, means)]
    lines += [
        "",
        f"optimal return (mean over tasks): {optimal.mean():.2f}",
        f"final {tail} episodes: mean return {final.mean():.2f}; "
        f"{int(np.sum(final >= near * optimal))}/{len(histories)} tasks at >= {near:.0%} of optimal",
    ]
    return "\n".join(lines)
