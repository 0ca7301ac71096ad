"""Reference agents with the same ``predict`` / ``observe`` interface as `ADAgent`."""

from __future__ import annotations

import numpy as np

from ad_gym.envs.dark_room import DOWN, LEFT, NOOP, RIGHT, UP


class RandomAgent:
    """Uniformly random actions. A batch is an observation with one more dimension than
    ``observation_ndim`` (1 for the grid and bandit families, 3 for pixels)."""

    def __init__(self, action_space, seed: int | None = None, observation_ndim: int = 1):
        self.n_actions = int(action_space.n)
        self.rng = np.random.default_rng(seed)
        self.observation_ndim = observation_ndim

    @classmethod
    def for_env(cls, env_id: str, seed: int | None = None) -> "RandomAgent":
        import gymnasium as gym

        env = gym.make(env_id)
        agent = cls(env.action_space, seed=seed, observation_ndim=len(env.observation_space.shape))
        env.close()
        return agent

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        n = obs.shape[0] if obs.ndim == self.observation_ndim + 1 else None
        actions = self.rng.integers(self.n_actions, size=n or 1)
        return (actions if n else actions[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        pass


class GridOracle:
    """Knows each env's target cells and walks straight to them in order (x first, then y).

    ``targets[i]`` lists env i's cells: ``[goal]`` in Dark Room, ``[key, door]`` in Dark
    Key-to-Door. The oracle heads for the next target, moves on to the following one when a step
    pays a reward, and waits on the last one (no-op); every episode starts again from the first.
    It follows the rewards through `observe`, like `ADAgent`.
    """

    def __init__(self, targets):
        self.targets = np.asarray(targets, dtype=np.int64).reshape(len(targets), -1, 2)  # (n_envs, n_targets, 2)
        self.stage = np.zeros(len(self.targets), dtype=np.int64)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation).reshape(-1, 2)
        if episode_start is not None:
            self.stage[np.asarray(episode_start, dtype=bool).reshape(-1)] = 0
        target = self.targets[np.arange(len(obs)), self.stage]
        dx, dy = (target - obs).T
        actions = np.select([dx < 0, dx > 0, dy < 0, dy > 0], [LEFT, RIGHT, UP, DOWN], default=NOOP)
        return (actions if np.asarray(observation).ndim == 2 else actions[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        paid = np.asarray(reward).reshape(-1) > 0
        self.stage = np.minimum(self.stage + paid, self.targets.shape[1] - 1)
        if done is not None:
            self.stage[np.asarray(done, dtype=bool).reshape(-1)] = 0


class PlanOracle:
    """Replays a fixed optimal action sequence per env from the start of every episode.

    For envs with a fixed start and deterministic moves whose observations do not give the
    position away (Watermaze's pixels): the plan walks straight to the goal.
    """

    def __init__(self, plans):
        self.plans = [list(plan) for plan in plans]
        self.t = np.zeros(len(self.plans), dtype=np.int64)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        if episode_start is not None:
            self.t[np.asarray(episode_start, dtype=bool).reshape(-1)] = 0
        actions = np.array([plan[min(t, len(plan) - 1)] for plan, t in zip(self.plans, self.t)], dtype=np.int64)
        return (actions if len(np.shape(observation)) == 4 else actions[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        self.t += 1
        if done is not None:
            self.t[np.asarray(done, dtype=bool).reshape(-1)] = 0


def watermaze_plan(platform, start=(5, 5), moves: str = "turn") -> list[int]:
    """Actions from the start, facing up, onto ``platform`` in the fewest steps: turns and forward
    moves (``moves="turn"``, Watermaze-v0) or compass moves (``"compass"``, v1)."""
    from ad_gym.envs.watermaze import EAST, FORWARD, NORTH, SOUTH, TURN_LEFT, TURN_RIGHT, WEST

    dx, dy = platform[0] - start[0], platform[1] - start[1]
    if moves == "compass":
        return [WEST if dx < 0 else EAST] * abs(dx) + [NORTH if dy < 0 else SOUTH] * abs(dy)
    if dx == 0:
        return [FORWARD] * -dy if dy < 0 else [TURN_LEFT, TURN_LEFT] + [FORWARD] * dy
    sideways = TURN_LEFT if dx < 0 else TURN_RIGHT
    if dy < 0:  # up first, then sideways
        return [FORWARD] * -dy + [sideways] + [FORWARD] * abs(dx)
    # sideways first, then down: from facing left, down is a left turn; from facing right, a right turn
    return [sideways] + [FORWARD] * abs(dx) + ([sideways] + [FORWARD] * dy if dy > 0 else [])


class BestArmOracle:
    """Knows each bandit's reward probabilities and always pulls the best arm."""

    def __init__(self, means):
        self.best = np.asarray(means, dtype=np.float64).argmax(axis=1)  # (n_envs,)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return (self.best.copy() if np.asarray(observation).ndim == 2 else self.best[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        pass


def oracle_for(env_id: str, tasks):
    """The goal-aware optimal policy of ``env_id`` for a batch of envs on ``tasks``."""
    from ad_gym.envs.tasks import canonical_env_id, family

    env_id = canonical_env_id(env_id)
    if env_id in ("DarkRoom-v0", "DarkRoomHard-v0"):
        return GridOracle([[t["goal"]] for t in tasks])
    if env_id.startswith("DarkKeyToDoor-"):  # v0 and v1: the same tasks
        return GridOracle([[t["key"], t["door"]] for t in tasks])
    if env_id.startswith("Watermaze-"):
        moves = family(env_id).kwargs.get("moves", "turn")
        return PlanOracle([watermaze_plan(t["platform"], moves=moves) for t in tasks])
    if env_id == "AdversarialBandit-v0":
        return BestArmOracle([t["means"] for t in tasks])
    raise ValueError(f"no oracle for {env_id}")


class UCBAgent:
    """UCB1 on a multi-armed bandit, one independent learner per env of the batch.

    Pulls every arm once (lowest index first), then the arm maximising
    ``mean_reward + c * sqrt(2 ln t / pulls)``. Its statistics persist across episodes (the task
    stays the same); ``reset()`` or a new ``state=None`` batch size starts over. It is the source
    algorithm of the Adversarial Bandit and the reference of its normalised score.
    """

    def __init__(self, action_space, c: float = 1.0):
        if not isinstance(c, (int, float)) or isinstance(c, bool) or c < 0:
            raise ValueError(f"c must be a non-negative number, got {c!r}")
        self.n_arms, self.c = int(action_space.n), float(c)
        self.pulls = self.totals = None
        self._last = None

    def reset(self) -> None:
        self.pulls = self.totals = None

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        obs = np.asarray(observation)
        n = obs.shape[0] if obs.ndim == 2 else 1
        if self.pulls is None or len(self.pulls) != n:
            self.pulls, self.totals = np.zeros((n, self.n_arms)), np.zeros((n, self.n_arms))
        t = self.pulls.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = self.totals / self.pulls + self.c * np.sqrt(2 * np.log(np.maximum(t, 1)) / self.pulls)
        scores[self.pulls == 0] = np.inf  # untried arms first
        # Ties (several untried arms, equal scores) go to the lowest index, as UCB1 is usually written.
        actions = scores.argmax(axis=1)
        self._last = actions
        return (actions if obs.ndim == 2 else actions[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        rows = np.arange(len(self._last))
        self.pulls[rows, self._last] += 1
        self.totals[rows, self._last] += np.asarray(reward, dtype=np.float64).reshape(-1)
