"""Source learners: train one agent on one task and record its whole learning history.

Stable-Baselines3 algorithms (A2C, PPO, DQN) for the grid and pixel families, UCB, the paper's
source for the Adversarial Bandit, and the goal-aware oracle (expert demonstrations, for expert
distillation), all recorded into the same history format.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv

from ad_gym.agents.baselines import UCBAgent
from ad_gym.data.histories import History
from ad_gym.envs.tasks import canonical_env_id, family, oracle_for
from ad_gym.models.transformer import pixel_convs
from ad_gym.settings import setting
from ad_gym.sources.noisy_oracle import NoiseSchedule, NoisyOracle
from ad_gym.sources.recorder import HistoryBuffer, HistoryRecorder
from ad_gym.version import __version__

SB3_ALGORITHMS = {"a2c": A2C, "ppo": PPO, "dqn": DQN}
# Sources that are not SB3 learners: agents with predict/observe, run by `_run_agent`. The oracle
# knows the task and does not learn: its "history" is expert demonstrations.
AGENT_SOURCES = {"ucb": UCBAgent, "oracle": oracle_for, "oracle-eps": NoisyOracle}
ALGORITHMS = {**SB3_ALGORITHMS, **AGENT_SOURCES}

# Our defaults on top of SB3's own (SB3's defaults apply to everything not listed).
# A2C: SB3 defaults (RMSprop, lr 7e-4, n_steps 5, gamma 0.99, 64x64 MLP) plus the paper's entropy
# bonus of 0.01; with 8 streams it is near-optimal on most Dark Room goals within ~60 episodes
# per stream. The paper's A3C used 100 actors, lr 1e-4, lambda 0.95 and a 3x128 MLP: set them
# with `hyperparams` to follow it more closely.
DEFAULT_HYPERPARAMS: dict[str, dict[str, Any]] = {
    "a2c": {"ent_coef": 0.01},
    "ppo": {"n_steps": 32, "batch_size": 64, "n_epochs": 4, "learning_rate": 1e-3, "ent_coef": 0.01},
    # DQN: a gradient step per env step (of all streams), lr 5e-4, batch 64, a target update every
    # 250 steps, ε decaying over the first 20% of the run. SB3's own defaults (a step every 4)
    # never learn Dark Room in 16k steps per goal; these are near-optimal by ~25 episodes per
    # stream (benchmarks/results/sources_darkroom.md).
    "dqn": {"learning_rate": 5e-4, "train_freq": 1, "gradient_steps": 1, "target_update_interval": 250,
            "exploration_fraction": 0.2, "learning_starts": 500, "batch_size": 64},
    "ucb": {"c": 1.0},  # UCB1's exploration bonus c * sqrt(2 ln t / n)
    "oracle": {},
    "oracle-eps": NoiseSchedule().to_dict(),  # the noise schedule (ad_gym.sources.noisy_oracle)
}


@dataclass
class SourceConfig:
    """How a source learner is trained on each task.

    ``total_steps`` counts env steps per task summed over all streams (SB3's ``total_timesteps``);
    each stream is one of the learner's parallel actors, like one of A3C's workers.
    """

    algo: str = setting("a2c", f"the learner: one of {', '.join(sorted(ALGORITHMS))}")
    n_streams: int = setting(8, "parallel envs of one learner per task, each recorded as one stream")
    total_steps: int = setting(60_000, "env steps per task, all streams together")
    hyperparams: dict[str, Any] = setting(None, "keyword arguments of the algorithm (or the noisy oracle's schedule)", factory=dict)
    # "auto": MlpPolicy, or for pixel envs SB3's CnnPolicy with `SmallCNN` as its features
    # extractor (SB3's NatureCNN is sized for 84x84 Atari frames; ours are 36x36).
    policy: str = setting("auto", "SB3 policy name; auto: MlpPolicy, or a small CNN for pixels")

    def __post_init__(self):
        if self.algo not in ALGORITHMS:
            raise ValueError(f"unknown algo {self.algo!r}; expected one of {sorted(ALGORITHMS)}")
        if not isinstance(self.n_streams, int) or self.n_streams < 1:
            raise ValueError(f"n_streams must be a positive integer, got {self.n_streams!r}")
        if not isinstance(self.total_steps, int) or self.total_steps < self.n_streams:
            raise ValueError(f"total_steps must be an integer >= n_streams ({self.n_streams}), got {self.total_steps!r}")
        if not isinstance(self.hyperparams, dict):
            raise TypeError(f"hyperparams must be a dict of {self.algo.upper()} keyword arguments, got {self.hyperparams!r}")
        if self.algo == "oracle":
            if self.hyperparams:
                raise ValueError(f"the oracle takes no hyperparameters, got {sorted(self.hyperparams)}")
            return
        if self.algo == "oracle-eps":
            allowed = {f.name for f in fields(NoiseSchedule)}
            unknown = set(self.hyperparams) - allowed
            if unknown:
                raise ValueError(f"{sorted(unknown)} are not noise-schedule settings; allowed: {sorted(allowed)}")
            NoiseSchedule(**self.algo_kwargs())  # checks the values
            return
        algo_class = ALGORITHMS[self.algo]
        reserved = {"env", "seed", "device", "verbose", "policy", "action_space"} & set(self.hyperparams)
        if reserved:
            raise ValueError(f"hyperparams may not set {sorted(reserved)}: they are fixed by ad_gym")
        import inspect

        parameters = inspect.signature(algo_class.__init__).parameters
        allowed = set(parameters) - {"self"}
        unknown = set(self.hyperparams) - allowed
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not {algo_class.__name__} arguments; allowed: {sorted(allowed)}")
        for key, value in self.hyperparams.items():
            check_sb3_value(algo_class.__name__, key, value, parameters[key].default)

    def algo_kwargs(self) -> dict[str, Any]:
        return {**DEFAULT_HYPERPARAMS[self.algo], **self.hyperparams}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "algo_kwargs": self.algo_kwargs()}


# SB3 arguments whose bad values SB3 accepts and fails on only mid-training (n_steps=0 is an
# UnboundLocalError at the first rollout), or never (gamma=1.5 trains on).
_POSITIVE = {"learning_rate", "n_steps", "batch_size", "n_epochs", "buffer_size", "target_update_interval",
             "max_grad_norm", "clip_range", "stats_window_size"}
_NON_NEGATIVE = {"learning_starts", "ent_coef", "vf_coef"}
_UNIT_INTERVAL = {"gamma", "gae_lambda", "tau", "exploration_fraction", "exploration_initial_eps", "exploration_final_eps"}


def _looks_numeric(value: Any) -> bool:
    try:
        float(value)
        return isinstance(value, str)
    except (TypeError, ValueError):
        return False


def check_sb3_value(algo: str, key: str, value: Any, default: Any) -> None:
    """Refuse a hyperparameter value of the wrong type or range for an SB3 argument, where the
    argument's SB3 default (a number, a flag) says what it takes."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "train_freq" and isinstance(value, (list, tuple)):
        return  # DQN's (frequency, unit) form: SB3 checks it
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{algo} argument {key} takes true or false, got {value!r}")
        return
    if isinstance(default, (int, float)) or key in _POSITIVE | _NON_NEGATIVE | _UNIT_INTERVAL:
        if isinstance(default, (int, float)) and not is_number:
            hint = " (read as a string: not a JSON number; write e.g. 0.99, not .99)" if _looks_numeric(value) else ""
            raise TypeError(f"{algo} argument {key} takes a number like its default {default!r}, got {value!r}{hint}")
        if not is_number:
            return  # e.g. PPO's clip_range as a schedule: SB3 checks it
        if not np.isfinite(value):
            raise ValueError(f"{algo} argument {key} must be a finite number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise TypeError(f"{algo} argument {key} takes a whole number like its default {default!r}, got {value!r}")
        if key in _POSITIVE and value <= 0:
            raise ValueError(f"{algo} argument {key} must be > 0, got {value!r}")
        if key in _NON_NEGATIVE and value < 0:
            raise ValueError(f"{algo} argument {key} must be >= 0, got {value!r}")
        if key in _UNIT_INTERVAL and not 0 <= value <= 1:
            raise ValueError(f"{algo} argument {key} must be in [0, 1], got {value!r}")


def task_seed(seed: int, task_index: int) -> int:
    """The seed of the learner on one task: fixed by the run's seed and the task's identity, so
    a task gets the same learner whichever other tasks are collected with it."""
    return int(np.random.SeedSequence([int(seed), int(task_index)]).generate_state(1)[0] & 0x7FFFFFFF)


def _make_env(env_id: str, task: dict[str, Any]) -> gym.Env:
    env = gym.make(env_id, **task)
    wrapper = family(env_id).source_wrapper  # e.g. Key-to-Door's has-key flag, for the learner only
    return wrapper(env) if wrapper else env


class SmallCNN(BaseFeaturesExtractor):
    """The AD model's `pixel_convs` as an SB3 features extractor (channels first, as SB3 feeds them)."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128):
        super().__init__(observation_space, features_dim)
        self.convs, flat = pixel_convs(*observation_space.shape)
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.convs(observations))


def _policy(config: SourceConfig, vec_env) -> tuple[str, dict[str, Any]]:
    """The SB3 policy name and any policy_kwargs it needs on this env."""
    if config.policy != "auto":
        return config.policy, {}
    if is_image_space(vec_env.observation_space):
        return "CnnPolicy", {"features_extractor_class": SmallCNN}
    return "MlpPolicy", {}


def _make_learner(env_id: str, task: dict[str, Any], config: SourceConfig, seed: int):
    vec_env = DummyVecEnv([lambda: _make_env(env_id, task)] * config.n_streams)
    algo_class = ALGORITHMS[config.algo]
    policy, policy_kwargs = _policy(config, vec_env)
    kwargs = config.algo_kwargs()
    kwargs["policy_kwargs"] = {**policy_kwargs, **kwargs.get("policy_kwargs", {})}
    model = algo_class(policy, vec_env, seed=seed, device="cpu", verbose=0, **kwargs)
    # A logger with no outputs: SB3's default one makes a folder in /tmp for every learn() call.
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model, vec_env


def validate_source(env_id: str, config: SourceConfig) -> None:
    """Build (not train) the learner once, so bad hyperparameter values fail early and clearly."""
    env_id = canonical_env_id(env_id)
    horizon = gym.make(env_id).unwrapped.max_steps
    if config.total_steps // config.n_streams < horizon:
        raise ValueError(
            f"{config.total_steps} steps over {config.n_streams} streams is {config.total_steps // config.n_streams} per "
            f"stream, less than one {env_id} episode ({horizon} steps): no stream would record a complete episode; "
            f"use at least {horizon * config.n_streams} steps"
        )
    if config.algo == "ucb":
        if family(env_id).default_source != "ucb":
            raise ValueError(f"UCB ignores observations: it is a source for bandits (AdversarialBandit-v0), not {env_id}")
        UCBAgent(gym.make(env_id).action_space, **config.algo_kwargs())
        return
    if config.algo in ("oracle", "oracle-eps"):
        oracle_for(env_id, family(env_id).all_tasks[:1])  # raises for a family without one
        return
    try:
        _, vec_env = _make_learner(env_id, family(env_id).all_tasks[0], config, seed=0)
    except Exception as exc:  # SB3 raises assertions and type errors from deep inside
        raise ValueError(
            f"{ALGORITHMS[config.algo].__name__} cannot be built with hyperparameters {config.algo_kwargs()} "
            f"on {env_id}: {type(exc).__name__}: {exc}"
        ) from exc
    vec_env.close()


def learn_task(env_id: str, task: dict[str, Any], config: SourceConfig, seed: int = 0,
               sb3_log_dir: str | os.PathLike | None = None) -> History:
    """Train a fresh learner on one task and return its complete learning history. With
    ``sb3_log_dir``, an SB3 learner also writes its own logs there (progress.csv, and TensorBoard
    event files when tensorboard is installed), as ``tensorboard_log=`` does in SB3."""
    env_id = canonical_env_id(env_id)
    task_index = family(env_id).index(task)
    learner_seed = task_seed(seed, task_index)
    start = time.perf_counter()
    if config.algo == "ucb":
        arrays = _run_agent(env_id, task, UCBAgent(gym.make(env_id).action_space, **config.algo_kwargs()), config, learner_seed)
    elif config.algo == "oracle":
        arrays = _run_agent(env_id, task, oracle_for(env_id, [task] * config.n_streams), config, learner_seed)
    elif config.algo == "oracle-eps":
        noisy = NoisyOracle(
            lambda tasks: oracle_for(env_id, tasks), task, config.n_streams, int(gym.make(env_id).action_space.n),
            NoiseSchedule(**config.algo_kwargs()), seed=learner_seed, decoys=family(env_id).split("train"),
        )
        arrays = _run_agent(env_id, task, noisy, config, learner_seed)
    else:
        arrays = _run_sb3(env_id, task, config, learner_seed, sb3_log_dir)
    seconds = time.perf_counter() - start
    metadata = {
        "env_id": env_id,
        "task_index": task_index,
        "source": config.to_dict(),
        "seed": int(seed),
        "learner_seed": learner_seed,
        "ad_gym_version": __version__,
        "seconds": round(seconds, 3),
    }
    return History(task=task, metadata=metadata, **arrays)


def _run_sb3(env_id: str, task: dict[str, Any], config: SourceConfig, seed: int,
             log_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    model, vec_env = _make_learner(env_id, task, config, seed)
    if log_dir is not None:
        model.set_logger(configure(str(log_dir), ["csv", "tensorboard"] if _has_tensorboard() else ["csv"]))
    wrapper = family(env_id).source_wrapper
    recorder = HistoryRecorder(observation_fn=wrapper.history_observation if wrapper else None)
    model.learn(total_timesteps=config.total_steps, callback=recorder)
    vec_env.close()
    return recorder.arrays()


def _has_tensorboard() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


def _run_agent(env_id: str, task: dict[str, Any], agent, config: SourceConfig, seed: int) -> dict[str, np.ndarray]:
    """A predict/observe agent (UCB, the oracle) acting for every stream, each stream on its own
    plain env (its own reward draws and start cells); the agent keeps one state per stream."""
    envs = [gym.make(env_id, **task) for _ in range(config.n_streams)]
    seeds = np.random.SeedSequence(seed).generate_state(config.n_streams)
    obs = np.stack([env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)])
    buffer = HistoryBuffer()
    for _ in range(config.total_steps // config.n_streams):
        actions, _ = agent.predict(obs)
        rewards, dones = np.zeros(len(envs), np.float32), np.zeros(len(envs), bool)
        next_obs, following_obs = obs.copy(), obs.copy()  # what each action led to; what comes next
        for i, env in enumerate(envs):
            next_obs[i], rewards[i], terminated, truncated, _ = env.step(int(actions[i]))
            dones[i] = terminated or truncated
            following_obs[i] = env.reset()[0] if dones[i] else next_obs[i]
        buffer.add(obs, actions, rewards, dones, next_obs)
        agent.observe(rewards, dones, next_obs=next_obs)
        obs = following_obs
    return buffer.arrays()
