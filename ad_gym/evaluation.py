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
) -> np.ndarray:
    """Returns ``(len(tasks) * len(seeds), n_episodes)`` episode returns, rows task-major.

    ``make_agent(row_tasks)`` builds the agent for the batch (it may use the tasks, like an
    oracle); it must offer ``predict(obs, state, episode_start)`` and ``observe(reward, done)``.
    All envs step in lockstep; an env that finished its episodes keeps playing unrecorded.
    """
    rows = [(task, seed) for task in tasks for seed in seeds]
    envs = [gym.make(env_id, **task) for task, _ in rows]
    obs = np.stack([env.reset(seed=1000 * seed + i)[0] for i, (env, (_, seed)) in enumerate(zip(envs, rows))])
    agent = make_agent([task for task, _ in rows])
    returns = np.zeros((len(rows), n_episodes))
    episode = np.zeros(len(rows), dtype=np.int64)
    episode_start = np.ones(len(rows), dtype=bool)
    state = None
    bar = tqdm(total=n_episodes, desc="episodes", disable=not progress)
    while episode.min() < n_episodes:
        actions, state = agent.predict(obs, state=state, episode_start=episode_start)
        rewards, dones = np.zeros(len(rows), dtype=np.float32), np.zeros(len(rows), dtype=bool)
        for i, env in enumerate(envs):
            o, r, terminated, truncated, _ = env.step(int(actions[i]))
            rewards[i], dones[i] = r, terminated or truncated
            if episode[i] < n_episodes:
                returns[i, episode[i]] += r
            if dones[i]:
                episode[i] += 1
                o, _ = env.reset()
            obs[i] = o
        agent.observe(rewards, dones)
        episode_start = dones
        bar.n = int(min(episode.min(), n_episodes))
        bar.refresh()
    bar.close()
    for env in envs:
        env.close()
    return returns
