"""Adversarial Bandit: a 10-armed Bernoulli bandit whose good arm moves between train and test."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ad_gym.envs.checks import check_int, check_render_mode
from ad_gym.envs.horizon import HorizonInSpec
from ad_gym.envs.tasks import TaskFamily, add_family, task_key

CONDITIONS = ("odd", "even", "uniform")
FAVOURED_SHARE = 0.95  # share of tasks whose best arm has the favoured parity


def sample_means(rng: np.random.Generator | np.random.RandomState, condition: str, n_arms: int = 10) -> tuple[float, ...]:
    """Draw one task of ``condition``: the arms' reward probabilities, rounded to 3 decimals.

    One arm is the best, with a probability drawn from U(0.5, 1); every other arm's is drawn from
    U(0, 0.5). Under "odd" the best arm is an odd-numbered arm (1, 3, ...) in 95% of tasks and
    an even-numbered one in the other 5%; "even" is the mirror image; "uniform" picks any arm.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; expected one of {list(CONDITIONS)}")
    odd, even = list(range(1, n_arms, 2)), list(range(0, n_arms, 2))
    if condition == "uniform":
        candidates = odd + even
    else:
        favoured, other = (odd, even) if condition == "odd" else (even, odd)
        candidates = favoured if rng.uniform() < FAVOURED_SHARE else other
    best = candidates[int(rng.uniform() * len(candidates))]  # uniform(): same call on both RNG kinds
    means = rng.uniform(0.0, 0.5, size=n_arms)
    means[best] = rng.uniform(0.5, 1.0)
    return tuple(round(float(m), 3) for m in means)


def validate_means(means: Any, n_arms: int) -> tuple[float, ...]:
    try:
        values = np.asarray(means, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"means must be {n_arms} reward probabilities, got {means!r}") from exc
    if values.shape != (n_arms,):
        raise ValueError(f"means must be {n_arms} reward probabilities (one per arm), got shape {values.shape}")
    if not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"means must be probabilities in [0, 1], got {means!r}")
    return tuple(float(v) for v in values)


class AdversarialBanditEnv(HorizonInSpec, gym.Env):
    """
    ## Description

    The Adversarial Bandit of Laskin et al., "In-context Reinforcement Learning with Algorithm
    Distillation" (2022): 10 arms with Bernoulli rewards, 100 pulls per episode. A task fixes the
    arms' reward probabilities (``means``). Training tasks put the best arm under an odd-numbered
    arm in 95% of tasks; the evaluation conditions put it under an even-numbered arm in 95% of
    tasks ("even", adversarial to what training taught) or under any arm ("uniform"). See
    `sample_means` for the exact sampling and ``ad_gym.tasks`` for the fixed task lists.

    ## Action Space

    `Discrete(n_arms)`: the arm to pull.

    ## Observation Space

    `MultiDiscrete([1])`: always ``[0]``. A bandit has no state; everything an agent can learn
    comes from its actions and rewards.

    ## Rewards

    1 with probability ``means[arm]``, else 0, drawn from ``self.np_random``. The best expected
    return of an episode is ``max_steps * max(means)``.

    ## Starting State

    ``[0]``.

    ## Episode End

    Truncated after ``max_steps`` pulls (100); never terminated.

    ## Tasks

    ``gym.make(id, means=(...))`` or ``reset(options={"means": (...)})`` fixes the task; otherwise
    it is drawn with `sample_means` under ``condition`` (default "odd", the training condition)
    from ``self.np_random`` on the first reset and on every seeded reset. Plain ``reset()`` keeps it.

    ## Arguments

    * ``means``: the arms' reward probabilities, or ``None`` to draw them at reset.
    * ``condition``: "odd", "even" or "uniform": how tasks are drawn when ``means`` is not given.
    * ``render_mode``: ``"ansi"`` or ``"rgb_array"``.
    * ``n_arms``: number of arms (10); ``max_steps``: pulls per episode (100).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        means: tuple[float, ...] | None = None,
        condition: str = "odd",
        render_mode: str | None = None,
        n_arms: int = 10,
        max_steps: int = 100,
    ):
        check_int("n_arms", n_arms, 2)
        check_int("max_steps", max_steps, 1)
        if condition not in CONDITIONS:
            raise ValueError(f"unknown condition {condition!r}; expected one of {list(CONDITIONS)}")
        check_render_mode(render_mode, self.metadata)
        self.n_arms, self.max_steps, self.condition = int(n_arms), int(max_steps), condition
        self.render_mode = render_mode
        self.observation_space = spaces.MultiDiscrete([1])
        self.action_space = spaces.Discrete(self.n_arms)
        self._task_fixed = means is not None
        self.means = validate_means(means, self.n_arms) if means is not None else None
        self.steps = 0
        self.pulls = np.zeros(self.n_arms, dtype=np.int64)
        self.last_arm: int | None = None

    @property
    def task(self) -> dict[str, Any]:
        return {"means": self.means}

    def optimal_return(self) -> float:
        """The expected return of pulling the best arm every time."""
        if self.means is None:
            raise RuntimeError("the task is not set yet: call reset() first")
        return self.max_steps * max(self.means)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        unknown = set(options) - {"means"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; {type(self).__name__} accepts only 'means'")
        if options.get("means") is not None:
            self.means = validate_means(options["means"], self.n_arms)
            self._task_fixed = True
        elif self.means is None or (seed is not None and not self._task_fixed):
            self.means = sample_means(self.np_random, self.condition, self.n_arms)
        self.steps = 0
        self.pulls[:] = 0
        self.last_arm = None
        return np.zeros(1, dtype=np.int64), {}

    def step(self, action) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.means is None:
            raise RuntimeError("call reset() before step()")
        if isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action):
            raise ValueError(f"action must be an arm in [0, {self.n_arms - 1}], got {action!r}")
        arm = int(action)
        reward = float(self.np_random.uniform() < self.means[arm])
        self.steps += 1
        self.pulls[arm] += 1
        self.last_arm = arm
        return np.zeros(1, dtype=np.int64), reward, False, self.steps >= self.max_steps, {}

    def render(self):
        if self.render_mode == "ansi":
            lines = [
                f"arm {i}: p={p:.3f} pulls={n:3d} {'#' * round(20 * p)}{' <' if i == self.last_arm else ''}"
                for i, (p, n) in enumerate(zip(self.means or (0.0,) * self.n_arms, self.pulls))
            ]
            return "\n".join(lines) + "\n"
        if self.render_mode == "rgb_array":
            width, height = 16, 64
            image = np.full((height, width * self.n_arms, 3), 30, dtype=np.uint8)
            for i, p in enumerate(self.means or (0.0,) * self.n_arms):
                bar = int(round(p * (height - 4)))
                colour = (220, 50, 50) if i == self.last_arm else (60, 120, 230)
                image[height - bar :, i * width + 2 : (i + 1) * width - 2] = colour
            return image
        return None


class BestArmOracle:
    """Knows each bandit's reward probabilities and always pulls the best arm."""

    def __init__(self, means):
        self.best = np.asarray(means, dtype=np.float64).argmax(axis=1)  # (n_envs,)

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        return (self.best.copy() if np.asarray(observation).ndim == 2 else self.best[0]), state

    def observe(self, reward, done=None, state=None, next_obs=None):
        pass


# -- the family: bandits drawn once from fixed seeds -----------------------------------------


def bandit_tasks(condition: str, count: int, seed: int) -> tuple[dict[str, Any], ...]:
    rng = np.random.RandomState(seed)  # legacy RNG: its streams never change, so neither do the lists
    return tuple({"means": sample_means(rng, condition)} for _ in range(count))


_BANDIT_TRAIN, _BANDIT_TEST = bandit_tasks("odd", 1000, seed=1), bandit_tasks("odd", 100, seed=2)
_BANDIT_TEST_KEYS = frozenset(task_key(t) for t in _BANDIT_TEST)

add_family(
    TaskFamily(
        env_id="AdversarialBandit-v0",
        entry_point="ad_gym.envs.adversarial_bandit:AdversarialBanditEnv",
        all_tasks=_BANDIT_TRAIN + _BANDIT_TEST,
        is_test=lambda task: task_key(task) in _BANDIT_TEST_KEYS,
        split_rule="train = 1000 tasks of the 'odd' condition (RandomState(1)); test = 100 more (RandomState(2)); "
        "even = 100 tasks of the 'even' condition (RandomState(3)); uniform = 100 of 'uniform' (RandomState(4))",
        extra_splits={"even": bandit_tasks("even", 100, seed=3), "uniform": bandit_tasks("uniform", 100, seed=4)},
        eval_splits=("test", "even", "uniform"),
        default_source="ucb",
        oracle=lambda tasks: BestArmOracle([t["means"] for t in tasks]),
    )
)
