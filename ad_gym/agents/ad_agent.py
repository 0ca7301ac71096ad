"""`ADAgent`: a trained AD transformer behind Stable-Baselines3's ``predict`` API.

The agent keeps a growing multi-episode context per env: every observation it is asked about,
the action it chose, and the reward that action earned. ``predict`` never sees rewards, so they
come in through `ADAgent.observe` (one call per step in a plain loop) or, for SB3 tools such as
``evaluate_policy``, through `ADContextWrapper`, a VecEnv wrapper that makes that call itself.

    agent = ADAgent.load("darkroom")                 # a shipped pretrained model, or a path
    env = gym.make("DarkRoom-v0", goal=(1, 7))
    obs, _ = env.reset(seed=0)
    state = None
    for _ in range(100 * 20):
        action, state = agent.predict(obs, state)
        obs, reward, terminated, truncated, _ = env.step(action)
        agent.observe(reward, terminated or truncated, next_obs=obs)   # the one extra call
        if terminated or truncated:
            obs, _ = env.reset()                         # same goal: the context carries over
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ad_gym.checkpoints import (
    CHECKPOINT, CheckpointError, load_checkpoint, refuse_other_env, resolve_checkpoint, save_checkpoint,
)
from ad_gym.envs.tasks import canonical_env_id
from ad_gym.models.transformer import ADConfig, ADTransformer, KVCache, check_weights_fit


class ContextDroppedWarning(UserWarning):
    """``predict`` was called without a state after transitions were observed: the context that
    held them was dropped (SB3's plain ``action, _ = model.predict(obs)`` idiom)."""


@dataclass
class ADContext:
    """The multi-episode context of a batch of envs: the ``state`` that ``predict`` returns."""

    n_envs: int
    cache: KVCache | None = None  # incremental mode
    tokens: dict[str, deque[torch.Tensor]] = field(default_factory=dict)  # the tokens that can still matter
    prev_actions: np.ndarray = None  # (n,) action chosen at the last predict, n_actions if none yet
    prev_rewards: np.ndarray = None  # (n,) reward it earned
    steps: np.ndarray = None  # (n,) step of the next observation in its episode
    final_obs: np.ndarray | None = None  # (n, ...) the view each env's last episode ended on (final_obs models)
    awaiting_reward: bool = False  # predict was called; observe has not been yet
    last_actions: np.ndarray | None = None
    cleared_rows: bool = False  # part of the batch was reset since the start

    def transitions(self) -> dict[str, np.ndarray]:
        """The context as arrays (n_envs, T, ...): obs, prev_actions, prev_rewards, steps (and
        final_obs for models that read the view each episode ended on)."""
        return {name: torch.stack(list(values), dim=1).cpu().numpy() for name, values in self.tokens.items()}


class ADAgent:
    """An in-context RL agent: a frozen AD transformer plus the context it is learning from.

    ``predict(observation, state=None, episode_start=None, deterministic=False)`` follows
    Stable-Baselines3: one observation or a batch from a VecEnv in, actions and a state out.
    ``state=None`` starts a new context (a new task); passing back the returned state continues
    it. ``episode_start`` marks the first observation of a new episode, which resets the
    step-in-episode counter but keeps the context: learning across episodes is the point.
    """

    def __init__(self, model: ADTransformer, meta: dict[str, Any], use_cache: bool = True, seed: int | None = None):
        self.model = model.eval()
        self.meta = meta
        self.config: ADConfig = model.config
        self.env_id = canonical_env_id(meta["env_id"])
        env = gym.make(self.env_id)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        env.close()
        self.use_cache = use_cache
        self.generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % 2**63)
        self._active: ADContext | None = None
        self._observed = False  # transitions observed since the last reset or fresh context
        self._resume_state: dict[str, Any] = {}  # an unfinished checkpoint's optimizer and sampler states

    # -- persistence -----------------------------------------------------------------------

    @classmethod
    def load(
        cls, path: str | os.PathLike, env_id: str | None = None, env: gym.Env | None = None, device: str = "auto", **kwargs
    ) -> "ADAgent":
        """Load a checkpoint file, a training folder, or a shipped pretrained model by name.

        With ``env_id``, refuse a checkpoint trained on another env; with ``env`` (SB3's keyword),
        refuse an env of another task family or with other spaces. ``device``: "auto" and "cpu"
        run on the CPU (one token per step: for a few envs a GPU does not pay); "cuda" or
        "cuda:N" runs the model on that GPU, which pays for large batches of envs (many tasks
        evaluated at once). Actions are sampled on the CPU either way, from the agent's seed.
        """
        from ad_gym.distributed import resolve_device

        if str(device) not in ("auto", "cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        run_on = torch.device("cpu") if str(device) in ("auto", "cpu") else resolve_device(str(device))
        meta, payload = load_checkpoint(resolve_checkpoint(path))
        if meta.get("kind") != "ad_model" or "model" not in payload:
            raise CheckpointError(f"{path} is not an AD model checkpoint")
        refuse_other_env(path, meta, env_id, env)
        try:
            config = ADConfig.from_dict(meta["model"])
            _check_config_fits_env(path, config, meta["env_id"])
            check_weights_fit(config, payload["model"])  # before building: the config may claim any size
            model = ADTransformer(config)
            model.load_state_dict(payload["model"])
        except CheckpointError:
            raise
        except (KeyError, TypeError, RuntimeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{path}: the weights do not match the model config ({exc})") from exc
        agent = cls(model.to(run_on), meta, **kwargs)
        agent._resume_state = {key: value for key, value in payload.items() if key != "model" and not meta.get("finished")}
        if env is not None:
            agent.check_spaces(env)
        return agent

    def check_spaces(self, env) -> None:
        """A ValueError unless ``env`` (an Env, an SB3 VecEnv or a Gymnasium vector env) observes and
        acts in this agent's spaces."""
        observation_space = getattr(env, "single_observation_space", env.observation_space)
        action_space = getattr(env, "single_action_space", env.action_space)
        if observation_space != self.observation_space:
            raise ValueError(
                f"the agent was trained on {self.env_id} with observations {self.observation_space}, "
                f"but the env given has {observation_space}"
            )
        if action_space != self.action_space:
            raise ValueError(f"the agent acts in {self.action_space}, the env given in {action_space}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model as a checkpoint file; given an existing folder, as ``folder/checkpoint.pt``."""
        if Path(path).is_dir():
            path = Path(path) / CHECKPOINT
        # An unfinished training checkpoint stays one: its optimizer and sampler states go back with
        # it, so `train` can still resume from the copy.
        return save_checkpoint(path, self.meta, {**self._resume_state, "model": self.model.state_dict()})

    # -- acting ----------------------------------------------------------------------------

    def reset(self, state: ADContext | None = None, env_indices=None) -> None:
        """Forget the context (a new task): all envs, or only ``env_indices``."""
        state = state or self._active
        if state is None:
            return
        rows = np.zeros(state.n_envs, dtype=bool)
        indices = range(state.n_envs) if env_indices is None else np.asarray(env_indices).reshape(-1).tolist()
        if not all(type(i) is int and 0 <= i < state.n_envs for i in indices):  # bools and floats are not indices
            raise ValueError(f"env_indices must be integers in [0, {state.n_envs}), got {env_indices!r}")
        if not indices:
            return
        rows[list(indices)] = True
        if rows.all():
            state.awaiting_reward = False  # a new task: an action predicted before it earns nothing
        state.prev_actions[rows] = self.config.n_actions
        state.prev_rewards[rows] = 0.0
        state.steps[rows] = 0
        if rows.all():
            self._observed = False
            state.tokens.clear()
            if state.cache is not None:
                state.cache = self.model.new_cache(state.n_envs)
            return
        state.cleared_rows = True
        if state.cache is not None:
            state.cache.clear(torch.from_numpy(rows).to(state.cache.valid.device))

    def new_context(self, n_envs: int) -> ADContext:
        return ADContext(
            n_envs=n_envs,
            cache=self.model.new_cache(n_envs) if self.use_cache else None,
            prev_actions=np.full(n_envs, self.config.n_actions, dtype=np.int64),
            prev_rewards=np.zeros(n_envs, dtype=np.float32),
            steps=np.zeros(n_envs, dtype=np.int64),
        )

    def predict(self, observation, state: ADContext | None = None, episode_start=None, deterministic: bool = False):
        obs, vectorized = self._check_observation(observation)
        n = obs.shape[0]
        if state is None and self._observed and self._active is not None and self._active.n_envs == n:
            # SB3's plain idiom, ``action, _ = model.predict(obs)``, would silently start every step
            # with an empty context: AD then never learns in context (0.10 against 7.53 measured).
            warnings.warn(
                "ADAgent.predict(obs) without a state starts a new, empty context and drops the one holding the "
                "transitions observed so far: pass back the state predict returned (action, state = "
                "agent.predict(obs, state)), or call agent.reset() first to start a new task on purpose",
                ContextDroppedWarning, stacklevel=2,
            )
            self._observed = False
        state = self._context_for(state, n, f"got {n} observations for a context of {{}} envs; pass state=None for a new batch")
        if state.awaiting_reward:
            raise RuntimeError(
                "predict was called twice without the reward in between: call agent.observe(reward, done) after "
                "each env.step, or wrap the VecEnv in ADContextWrapper(venv, agent)"
            )
        if episode_start is not None:
            starts = np.asarray(episode_start, dtype=bool).reshape(-1)
            if starts.shape[0] != n:
                raise ValueError(f"episode_start has {starts.shape[0]} entries for {n} observations")
            state.steps[starts] = 0
        self._active = state

        logits = self._logits(state, obs).float().cpu()  # sampled on the CPU: the same actions on any device
        if deterministic:
            actions = logits.argmax(dim=-1)
        else:
            actions = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=self.generator)[:, 0]
        actions = actions.numpy().astype(np.int64)
        state.last_actions = actions
        state.awaiting_reward = True
        return (actions if vectorized else actions[0]), state

    def observe(self, reward, done=None, state: ADContext | None = None, next_obs=None) -> None:
        """Give the agent the reward(s) its last action(s) earned, and whether the episode ended.

        ``next_obs``: the observation(s) ``env.step`` returned, before any reset. Models trained
        with ``final_obs`` read it where an episode ended (the view it ended on) and need it there.
        """
        state = state or self._active
        if state is None or not state.awaiting_reward:
            raise RuntimeError("observe() must follow predict(): there is no action awaiting its reward")
        rewards = _finite_rewards(reward)
        if rewards.shape[0] != state.n_envs:
            raise ValueError(f"got {rewards.shape[0]} rewards for {state.n_envs} envs")
        ended = np.zeros(state.n_envs, dtype=bool) if done is None else _done_flags(done)
        if ended.shape[0] != state.n_envs:
            raise ValueError(f"got {ended.shape[0]} done flags for {state.n_envs} envs")
        if self.config.final_obs and ended.any():
            if next_obs is None:
                raise ValueError(
                    "this model reads the view each episode ended on: pass the observation env.step returned, "
                    "agent.observe(reward, done, next_obs=obs), before resetting the env"
                )
            final, _ = self._check_observation(next_obs, state.n_envs)
            state.final_obs[ended] = final[ended]
        state.prev_actions = state.last_actions.copy()
        state.prev_rewards = rewards.copy()
        state.steps = state.steps + 1
        state.steps[ended] = 0
        state.awaiting_reward = False
        self._observed = True

    def prompt(self, observations, actions, rewards, dones, state: ADContext | None = None,
               next_observations=None) -> ADContext:
        """Put given transitions into the context before the agent acts, as if it had taken them.

        The paper's prompt: episodes of a demonstration (or of any policy) that the agent then
        learns on from, e.g. ``state = agent.prompt(obs, actions, rewards, dones)`` and then
        ``agent.predict(obs, state)`` as usual. One env: ``observations`` ``(T, *obs_shape)``,
        ``actions``, ``rewards`` and ``dones`` ``(T,)``; a batch: one more leading dimension,
        ``(n_envs, T, ...)``. Step ``t`` is the observation the action was taken in, the reward it
        earned and whether the episode ended there. ``state=None`` starts a new context; a state
        from ``predict`` continues it (between ``observe`` and the next ``predict``). Models that
        read the view each episode ended on need ``next_observations`` (what each step returned).
        Returns the state to pass to ``predict``.
        """
        acts = np.asarray(actions)
        if acts.ndim not in (1, 2) or acts.shape[-1] == 0:
            raise ValueError(f"actions must be (T,) or (n_envs, T) with T >= 1, got shape {acts.shape}")
        batch = acts if acts.ndim == 2 else acts[None]
        n, T = batch.shape
        if acts.dtype.kind not in "iu" or (batch < 0).any() or (batch >= self.config.n_actions).any():
            raise ValueError(f"actions must be integers in [0, {self.config.n_actions}), got {actions!r}")

        def steps_of(name, values, trailing=()):
            array = np.asarray(values)
            array = array if acts.ndim == 2 else array[None]
            if array.shape[:2] != (n, T) or array.shape[2:] != tuple(trailing):
                expected = (n, T, *trailing) if acts.ndim == 2 else (T, *trailing)
                raise ValueError(f"{name} must have shape {expected} to match the actions, got {np.shape(values)}")
            return array

        # Everything is checked before the context changes: a bad prompt leaves it as it was.
        shape = self.observation_space.shape
        obs = self._checked_steps(steps_of("observations", observations, shape), n, T)
        rew = _finite_rewards(steps_of("rewards", rewards)).reshape(n, T)
        ended = _done_flags(steps_of("dones", dones)).reshape(n, T)
        final = None
        if next_observations is not None:
            final = self._checked_steps(steps_of("next_observations", next_observations, shape), n, T)
        if self.config.final_obs and final is None and ended.any():
            raise ValueError("this model reads the view each episode ended on: pass next_observations (what each step returned)")
        state = self._context_for(state, n, f"the prompt is for {n} envs, the context for {{}}")
        if state.awaiting_reward:
            raise RuntimeError("prompt() was called between predict() and observe(): give the pending reward first")
        for t in range(T):
            self._logits(state, obs[:, t])  # appends the token; its logits are not needed
            state.last_actions = batch[:, t].astype(np.int64)
            state.awaiting_reward = True
            self.observe(rew[:, t], ended[:, t], state=state, next_obs=None if final is None else final[:, t])
        self._active = state
        return state

    # -- internals -------------------------------------------------------------------------

    def _context_for(self, state: ADContext | None, n: int, mismatch: str) -> ADContext:
        """``state`` checked for ``n`` envs (``mismatch`` formatted with its own count if not), or a new context."""
        if state is None:
            return self.new_context(n)
        if not isinstance(state, ADContext):
            raise TypeError(f"state must be None or the state returned by ADAgent.predict, got {type(state).__name__}")
        if state.n_envs != n:
            raise ValueError(mismatch.format(state.n_envs))
        return state

    def _checked_steps(self, observations: np.ndarray, n: int, T: int) -> np.ndarray:
        """``(n, T, *obs_shape)`` observations checked and laid out as ``predict`` feeds them."""
        checked, _ = self._check_observation(observations.reshape(n * T, *self.observation_space.shape))
        return checked.reshape(n, T, *checked.shape[1:])

    def _token(self, state: ADContext, obs: np.ndarray) -> dict[str, torch.Tensor]:
        device = self.model.head.weight.device
        token = {
            "obs": torch.from_numpy(obs),
            "prev_actions": torch.from_numpy(state.prev_actions),
            "prev_rewards": torch.from_numpy(state.prev_rewards),
            "steps": torch.from_numpy(np.minimum(state.steps, self.config.max_episode_steps - 1)),
        }
        if self.config.final_obs:
            if state.final_obs is None:  # same shape and dtype as the observations
                state.final_obs = np.zeros_like(obs)
            token["final_obs"] = torch.from_numpy(state.final_obs.copy())
        return {name: value.to(device) for name, value in token.items()}

    @torch.inference_mode()
    def _logits(self, state: ADContext, obs: np.ndarray) -> torch.Tensor:
        token = self._token(state, obs)
        # Keep every token that can still influence a prediction: n_layer x (context_len - 1) back,
        # and with prev_obs the one before those, whose observation is in the first one's token.
        reach = self.config.n_layer * (self.config.context_len - 1) + 1 + int(self.config.prev_obs)
        for name, value in token.items():
            state.tokens.setdefault(name, deque(maxlen=reach)).append(value)
        if state.cache is not None:
            return self.model.step(state.cache, **token)
        if state.cleared_rows:
            raise NotImplementedError("recompute mode cannot clear part of a batch's context; use the cache")
        sequence = {name: torch.stack(list(values), dim=1) for name, values in state.tokens.items()}
        return self.model(**sequence)[:, -1]

    def _check_observation(self, observation, n_envs: int | None = None) -> tuple[np.ndarray, bool]:
        if isinstance(observation, tuple) and len(observation) == 2 and isinstance(observation[1], dict):
            raise TypeError("got an (observation, info) pair: pass the observation alone, obs, info = env.reset()")
        try:
            obs = np.asarray(observation)
        except ValueError as exc:
            raise ValueError(f"observation is not an array of {self.observation_space}: {exc}") from exc
        if obs.size == 0:
            raise ValueError(f"got an empty observation batch of shape {obs.shape}")
        shape = self.observation_space.shape
        if obs.shape == shape:
            obs, vectorized = obs[None], False
        elif obs.ndim == len(shape) + 1 and obs.shape[1:] == shape:
            vectorized = True
        else:
            raise ValueError(
                f"observation of shape {obs.shape} does not fit {self.env_id}: expected {shape} or (n_envs, *{shape})"
            )
        if n_envs is not None and obs.shape[0] != n_envs:
            raise ValueError(f"got {obs.shape[0]} observations for a context of {n_envs} envs")
        if self.config.image_shape is not None:
            if obs.dtype != np.uint8:
                raise TypeError(f"{self.env_id} observations are uint8 images; got dtype {obs.dtype}")
            return obs.reshape(obs.shape[0], *shape), vectorized
        nvec = self.observation_space.nvec
        if not np.issubdtype(obs.dtype, np.integer) or (obs < 0).any() or (obs >= nvec).any():
            raise ValueError(f"observation {observation!r} is outside {self.env_id}'s observation space {self.observation_space}")
        return obs.reshape(obs.shape[0], -1).astype(np.int64), vectorized


def _check_config_fits_env(path, config: ADConfig, env_id: str) -> None:
    """A CheckpointError if the model reads other observations or actions than its env has, so a
    checkpoint with a wrong env_id fails on load instead of at its first predict."""
    from ad_gym.training import env_shapes

    shapes = env_shapes(canonical_env_id(env_id))
    model = {"obs_nvec": tuple(config.obs_nvec), "image_shape": tuple(config.image_shape or ()) or None,
             "n_actions": config.n_actions}
    env = {"obs_nvec": tuple(shapes["obs_nvec"]), "image_shape": shapes.get("image_shape"), "n_actions": shapes["n_actions"]}
    if model != env:
        raise CheckpointError(f"{path}: its model's observations and actions {model} do not fit its env {env_id}'s "
                              f"{env}; the checkpoint's env_id or model config is wrong")


MAX_REWARD = 1e6  # every family's rewards are within ±1; far larger ones are a caller's bug


def _finite_rewards(reward) -> np.ndarray:
    try:
        rewards = np.asarray(reward, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"reward must be a number or an array of numbers, got {reward!r}") from exc
    if not np.isfinite(rewards).all():
        raise ValueError(f"reward must be finite, got {reward!r}")
    if (np.abs(rewards) > MAX_REWARD).any():
        # Accepted, it would overflow the model's layer norms into NaN and spoil every later predict.
        raise ValueError(f"reward must be within ±{MAX_REWARD:g} (the model embeds it as a number), got {reward!r}")
    return rewards


def _done_flags(done) -> np.ndarray:
    flags = np.asarray(done).reshape(-1)
    if flags.dtype.kind not in "biu":
        raise TypeError(f"done must be a bool or an array of bools, got {done!r}")
    return flags.astype(bool)
