"""Prompts: episodes put into an in-context agent's context before it acts (`ADAgent.prompt`).

The paper prompts AD and ED with a suboptimal demonstration and shows that AD improves past it
while ED only holds it. A `Prompt` is a run of whole episodes on one task; this module builds the
ones that experiment needs (benchmarks/bench_prompt.py):

- `history_prompt`: the first episodes a source learner played (its early, poor episodes);
- `policy_prompt`: episodes of any agent with the ``predict`` / ``observe`` interface;
- `misleading_prompt`: episodes of another task's oracle played on this one (walking to a wrong
  target and earning as little as possible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ad_gym.data.histories import History
from ad_gym.envs.tasks import oracle_for, task_key


@dataclass
class Prompt:
    """Whole episodes on one task: step ``t``'s observation, the action taken in it, the reward it
    earned, whether the episode ended there, and what the step returned (``next_observations``)."""

    observations: np.ndarray  # (T, *obs_shape)
    actions: np.ndarray  # (T,)
    rewards: np.ndarray  # (T,)
    dones: np.ndarray  # (T,) bool
    next_observations: np.ndarray | None = None  # (T, *obs_shape); None: not recorded

    def episode_returns(self) -> np.ndarray:
        ends = np.flatnonzero(self.dones) + 1
        return np.array([chunk.sum() for chunk in np.split(self.rewards, ends)[: len(ends)]])


def stack_prompts(prompts: list[Prompt]) -> dict[str, np.ndarray]:
    """A batch's prompts as ``ADAgent.prompt`` keywords, ``(rows, T, ...)``; they must be equally long."""
    lengths = {len(p.actions) for p in prompts}
    if len(lengths) != 1:
        raise ValueError(f"a batch's prompts must have the same number of steps, got {sorted(lengths)} "
                         "(families whose episodes vary in length need prompts of equal length)")
    names = ["observations", "actions", "rewards", "dones"]
    if all(p.next_observations is not None for p in prompts):
        names.append("next_observations")  # only models that read the view an episode ended on need them
    return {name: np.stack([getattr(p, name) for p in prompts]) for name in names}


def history_prompt(history: History, n_episodes: int, stream: int = 0) -> Prompt:
    """The first ``n_episodes`` episodes one stream of a recorded history played."""
    _check_episodes(n_episodes)
    ends = np.flatnonzero(history.dones[stream])
    if len(ends) < n_episodes:
        raise ValueError(f"stream {stream} of {history.path or 'the history'} has {len(ends)} complete episodes, "
                         f"fewer than the {n_episodes} asked for")
    steps = slice(0, int(ends[n_episodes - 1]) + 1)
    following = None if history.next_observations is None else np.asarray(history.next_observations[stream, steps])
    return Prompt(np.asarray(history.observations[stream, steps]), np.asarray(history.actions[stream, steps]),
                  np.asarray(history.rewards[stream, steps]), np.asarray(history.dones[stream, steps]), following)


def policy_prompt(env_id: str, task: dict[str, Any], agent, n_episodes: int, seed: int = 0) -> Prompt:
    """``n_episodes`` episodes of ``agent`` (``predict`` / ``observe``, one env) on ``task``."""
    _check_episodes(n_episodes)
    env = gym.make(env_id, **task)
    obs, _ = env.reset(seed=seed)
    columns: dict[str, list] = {name: [] for name in ("observations", "actions", "rewards", "dones", "next_observations")}
    state, start, episodes = None, True, 0
    while episodes < n_episodes:
        action, state = agent.predict(obs[None], state, episode_start=np.array([start]))
        action = int(np.asarray(action).reshape(-1)[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        agent.observe(np.array([reward]), np.array([done]), next_obs=next_obs[None])
        for name, value in zip(columns, (obs, action, reward, done, next_obs)):
            columns[name].append(value)
        start, episodes = done, episodes + done
        obs = env.reset()[0] if done else next_obs
    env.close()
    return Prompt(*(np.array(columns[name]) for name in columns))


def misleading_prompt(env_id: str, task: dict[str, Any], candidates: list[dict[str, Any]], n_episodes: int,
                      seed: int = 0) -> Prompt:
    """Episodes of another task's oracle on ``task``: of the ``candidates`` (tasks other than
    ``task``), the one whose episodes earn least (nothing, where one walks past no reward)."""
    others = [c for c in candidates if task_key(c) != task_key(task)]
    if not others:
        raise ValueError("misleading_prompt needs at least one candidate task other than the prompted one")
    prompts = [policy_prompt(env_id, task, oracle_for(env_id, [other]), n_episodes, seed) for other in others]
    return min(prompts, key=lambda p: float(p.rewards.sum()))


def _check_episodes(n_episodes: int) -> None:
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
