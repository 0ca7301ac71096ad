"""RL² (Duan et al. 2016; Wang et al. 2016): a recurrent policy meta-trained across trials of tasks.

AD's paper compares against RL² as its upper bound. A *trial* is several episodes of one training
task; the policy's LSTM state is carried across the trial's episodes and its input at each step is
the observation, the previous action, its reward and whether an episode just ended, so it can
learn, within a trial, where the task's reward is. The task is drawn anew for every trial. The
base learner is sb3-contrib's `RecurrentPPO`; at play time `RL2Agent` keeps the LSTM state for the
whole evaluation context (it is reset only for a new task), behind the same ``predict`` /
``observe`` / ``prompt`` / ``save`` / ``load`` contract as `ADAgent`.

Checkpoints hold the policy's weights and its settings as JSON, nothing pickled: the policy is
rebuilt from them on load.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ad_gym.checkpoints import CheckpointError, load_checkpoint, refuse_other_env, resolve_checkpoint, save_checkpoint, stamped
from ad_gym.envs.tasks import canonical_env_id, tasks
from ad_gym.methods.base import Method, RunData, register

KIND = "rl2_model"
CRITICS = ("shared", "lstm", "none")


@dataclass(frozen=True)
class RL2Config:
    """Meta-training settings: trials, the recurrent PPO learner and its budget.

    The defaults are the Dark Room recipe (benchmarks/results/rl2_notes.md): a rollout of each env
    is one whole trial (10 episodes x 20 steps), so every training sequence starts a trial and the
    LSTM runs over it in one call (`_trial_policy_class`); 128 trials per rollout in minibatches of
    3200 steps, a critic reading the actor's LSTM state, lr 3e-4. On Dark Room it rises within a
    trial from ~5M env steps (~18,000 env steps/s on one core).
    """

    total_steps: int = 2_000_000  # env steps of meta-training, all trials together
    episodes_per_trial: int = 10  # episodes of one task per trial: the span the LSTM learns to use
    n_envs: int = 128  # trials played in parallel
    n_steps: int = 200  # steps per env between PPO updates (the length of the LSTM's training sequences)
    batch_size: int = 3200
    n_epochs: int = 4
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    lstm_hidden_size: int = 128
    net_arch: tuple[int, ...] = (64,)
    # What the value function reads: "none", the current input only (a critic that cannot tell
    # whether the trial has found the goal); "shared", the actor's LSTM state (detached, as
    # sb3-contrib does: a critic with memory at no extra cost); "lstm", a second LSTM of its own
    # (sb3-contrib's default: doubles the training cost).
    critic: str = "shared"
    seed: int = 0

    def __post_init__(self):
        for name in ("total_steps", "episodes_per_trial", "n_envs", "n_steps", "batch_size", "n_epochs", "lstm_hidden_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RL2Config.{name} must be a positive integer, got {value!r}")
        if self.critic not in CRITICS:
            raise ValueError(f"RL2Config.critic must be one of {CRITICS}, got {self.critic!r}")
        for name in ("learning_rate", "gamma", "gae_lambda", "ent_coef"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"RL2Config.{name} must be a non-negative number, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "net_arch": list(self.net_arch)}


# -- the input the policy sees -------------------------------------------------------------------


class StepEncoder:
    """Turns (observation, previous action, its reward, episode ended) into the policy's input:
    one-hot grid coordinates (or bandit state), one-hot previous action (one more slot for
    "none"), the reward, and the episode-end flag."""

    def __init__(self, observation_space: gym.Space, n_actions: int):
        if not isinstance(observation_space, gym.spaces.MultiDiscrete):
            raise ValueError(f"RL2 supports envs with MultiDiscrete observations (the grid families and the bandit); "
                             f"got {observation_space}")
        self.nvec = np.asarray(observation_space.nvec).reshape(-1)
        self.offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]])
        self.n_actions = n_actions
        self.size = int(self.nvec.sum()) + n_actions + 1 + 2
        low, high = np.zeros(self.size, dtype=np.float32), np.ones(self.size, dtype=np.float32)
        low[-2], high[-2] = -1e6, 1e6  # the reward: any finite value
        self.space = gym.spaces.Box(low, high, dtype=np.float32)

    def __call__(self, obs: np.ndarray, prev_actions: np.ndarray, prev_rewards: np.ndarray, ended: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs).reshape(len(prev_actions), -1)
        features = np.zeros((len(obs), self.size), dtype=np.float32)
        rows = np.arange(len(obs))[:, None]
        features[rows, self.offsets[None] + obs] = 1.0
        base = int(self.nvec.sum())
        features[np.arange(len(obs)), base + prev_actions] = 1.0
        features[:, -2] = prev_rewards
        features[:, -1] = ended
        return features


class TrialEnv(gym.Env):
    """One RL² trial per episode of this env: ``episodes_per_trial`` episodes of a task drawn from
    ``task_list`` at reset, the observation extended as `StepEncoder` does."""

    metadata = {"render_modes": []}

    def __init__(self, env_id: str, task_list: list[dict[str, Any]], episodes_per_trial: int):
        if not task_list:
            raise ValueError("TrialEnv needs at least one task")
        self.env_id, self.task_list, self.episodes_per_trial = canonical_env_id(env_id), list(task_list), episodes_per_trial
        probe = gym.make(self.env_id, **self.task_list[0])
        self.action_space = probe.action_space
        self.encoder = StepEncoder(probe.observation_space, int(probe.action_space.n))
        probe.close()
        self.observation_space = self.encoder.space
        self.env: gym.Env | None = None
        self.episodes = 0

    def _encode(self, obs, action: int, reward: float, ended: bool) -> np.ndarray:
        return self.encoder(obs[None], np.array([action]), np.array([reward], dtype=np.float32), np.array([ended]))[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        task = self.task_list[int(self.np_random.integers(len(self.task_list)))]
        if self.env is not None:
            self.env.close()
        self.env = gym.make(self.env_id, **task)
        obs, info = self.env.reset(seed=int(self.np_random.integers(2**31)))
        self.episodes = 0
        return self._encode(obs, self.encoder.n_actions, 0.0, False), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        ended = terminated or truncated
        if ended:
            self.episodes += 1
            if self.episodes < self.episodes_per_trial:  # the same task again; the LSTM carries on
                obs, info = self.env.reset()
        trial_over = ended and self.episodes >= self.episodes_per_trial
        return self._encode(obs, int(action), float(reward), ended), float(reward), trial_over, False, info


# -- the agent ------------------------------------------------------------------------------------


@dataclass
class RL2Context:
    """The state ``RL2Agent.predict`` returns: LSTM states and the last step of each env."""

    n_envs: int
    lstm: Any = None  # sb3-contrib's RNNStates-like (hidden, cell) numpy tuple, None before the first step
    prev_actions: np.ndarray = None
    prev_rewards: np.ndarray = None
    ended: np.ndarray = None
    new: np.ndarray = None  # rows whose LSTM state starts afresh at the next predict
    last_actions: np.ndarray | None = None
    awaiting_reward: bool = False


def _trial_policy_class():
    """sb3-contrib's recurrent policy, its LSTM run over whole sequences where it can.

    sb3-contrib runs the LSTM one time step at a time over any minibatch in which some sequence
    starts an episode, and every RL² training sequence starts one (a trial). A start at a
    sequence's first step needs no loop: zeroing the initial state there and running the LSTM over
    the whole sequence gives the same result, and made meta-training 2.5x faster (rl2_notes.md).
    """
    import torch as th
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    class TrialLstmPolicy(RecurrentActorCriticPolicy):
        @staticmethod
        def _process_sequence(features, lstm_states, episode_starts, lstm):
            n_seq = lstm_states[0].shape[1]
            starts = episode_starts.reshape((n_seq, -1)).swapaxes(0, 1)  # (seq_len, n_seq)
            if not th.all(starts[1:] == 0.0):  # a start inside a sequence: sb3-contrib's step-by-step loop
                return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)
            keep = (1.0 - starts[0]).view(1, n_seq, 1)
            sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)  # (seq_len, n_seq, features)
            output, states = lstm(sequence, (keep * lstm_states[0], keep * lstm_states[1]))
            return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), states

    return TrialLstmPolicy


def _build_policy(observation_space, action_space, config: RL2Config):
    return _trial_policy_class()(observation_space, action_space, lambda _: config.learning_rate,
                                      net_arch=list(config.net_arch), lstm_hidden_size=config.lstm_hidden_size,
                                      **_critic_kwargs(config))


def _critic_kwargs(config: RL2Config) -> dict[str, bool]:
    return {"shared_lstm": config.critic == "shared", "enable_critic_lstm": config.critic == "lstm"}


def _stored_config(stored: dict[str, Any]) -> RL2Config:
    """The settings a checkpoint was trained with. Before ``critic`` was a setting, ``critic_lstm``
    said whether the critic had its own LSTM, and before that it always had (sb3-contrib's default)."""
    stored = dict(stored)
    if "critic" not in stored:
        stored["critic"] = "lstm" if stored.pop("critic_lstm", True) else "none"
    return RL2Config(**{**stored, "net_arch": tuple(stored["net_arch"])})


class RL2Agent:
    """A meta-trained recurrent policy playing in context: SB3's ``predict`` plus ``observe``.

    ``state=None`` starts a new context (a new task: fresh LSTM state); ``episode_start`` marks a
    new episode of the same task, which RL² carries its LSTM state across, as in meta-training.
    """

    def __init__(self, policy, meta: dict[str, Any], seed: int | None = None):
        self.policy = policy.eval()
        self.meta = meta
        self.env_id = canonical_env_id(meta["env_id"])
        env = gym.make(self.env_id)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        env.close()
        self.encoder = StepEncoder(self.observation_space, int(self.action_space.n))
        if seed is not None:  # SB3's policies sample with torch's global generator
            torch.manual_seed(seed)
        self._active: RL2Context | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, env_id: str | None = None, env: gym.Env | None = None, seed: int | None = None,
             **kwargs) -> "RL2Agent":
        meta, payload = load_checkpoint(resolve_checkpoint(path))
        if meta.get("kind") != KIND or "policy" not in payload:
            raise CheckpointError(f"{path} is not an RL2 checkpoint")
        refuse_other_env(path, meta, env_id, env)
        try:
            config = _stored_config(meta["rl2"])
            probe = gym.make(meta["env_id"])
            encoder = StepEncoder(probe.observation_space, int(probe.action_space.n))
            policy = _build_policy(encoder.space, probe.action_space, config)
            probe.close()
            policy.load_state_dict(payload["policy"])
        except (KeyError, TypeError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{path}: the weights do not match the RL2 settings ({exc})") from exc
        return cls(policy, meta, seed=seed)

    def save(self, path: str | os.PathLike) -> Path:
        if Path(path).is_dir():
            path = Path(path) / "checkpoint.pt"
        return save_checkpoint(path, {**self.meta, "finished": True}, {"policy": self.policy.state_dict()})

    def check_spaces(self, env) -> None:
        if env.observation_space != self.observation_space or env.action_space != self.action_space:
            raise ValueError(f"the agent plays {self.env_id}'s spaces, the env given has "
                             f"{env.observation_space} and {env.action_space}")

    def new_context(self, n_envs: int) -> RL2Context:
        return RL2Context(n_envs=n_envs, prev_actions=np.full(n_envs, self.encoder.n_actions, dtype=np.int64),
                          prev_rewards=np.zeros(n_envs, dtype=np.float32), ended=np.zeros(n_envs, dtype=bool),
                          new=np.ones(n_envs, dtype=bool))

    def reset(self, state: RL2Context | None = None, env_indices=None) -> None:
        state = state or self._active
        if state is None:
            return
        rows = np.ones(state.n_envs, dtype=bool) if env_indices is None else np.isin(np.arange(state.n_envs), env_indices)
        state.prev_actions[rows], state.prev_rewards[rows], state.ended[rows], state.new[rows] = self.encoder.n_actions, 0.0, False, True
        if rows.all():
            state.awaiting_reward = False

    def predict(self, observation, state: RL2Context | None = None, episode_start=None, deterministic: bool = False):
        obs = np.asarray(observation)
        vectorized = obs.ndim == len(self.observation_space.shape) + 1
        obs = obs if vectorized else obs[None]
        if obs.shape[1:] != self.observation_space.shape or not all(self.observation_space.contains(o) for o in obs.astype(np.int64)):
            raise ValueError(f"observation {observation!r} is outside {self.env_id}'s observation space {self.observation_space}")
        if state is None:
            state = self.new_context(len(obs))
        elif not isinstance(state, RL2Context):
            raise TypeError(f"state must be None or the state returned by RL2Agent.predict, got {type(state).__name__}")
        elif state.n_envs != len(obs):
            raise ValueError(f"got {len(obs)} observations for a context of {state.n_envs} envs")
        if state.awaiting_reward:
            raise RuntimeError("predict was called twice without the reward in between: call agent.observe(reward, done)")
        features = self.encoder(obs.astype(np.int64), state.prev_actions, state.prev_rewards, state.ended)
        actions, state.lstm = self.policy.predict(features, state=state.lstm, episode_start=state.new, deterministic=deterministic)
        state.new = np.zeros(state.n_envs, dtype=bool)
        state.last_actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        state.awaiting_reward = True
        self._active = state
        return (state.last_actions if vectorized else state.last_actions[0]), state

    def observe(self, reward, done=None, state: RL2Context | None = None, next_obs=None) -> None:
        state = state or self._active
        if state is None or not state.awaiting_reward:
            raise RuntimeError("observe() must follow predict(): there is no action awaiting its reward")
        rewards = np.asarray(reward, dtype=np.float32).reshape(-1)
        if rewards.shape[0] != state.n_envs or not np.isfinite(rewards).all():
            raise ValueError(f"expected {state.n_envs} finite rewards, got {reward!r}")
        ended = np.zeros(state.n_envs, dtype=bool) if done is None else np.asarray(done, dtype=bool).reshape(-1)
        state.prev_actions, state.prev_rewards, state.ended = state.last_actions.copy(), rewards, ended
        state.awaiting_reward = False

    def prompt(self, observations, actions, rewards, dones, state: RL2Context | None = None, next_observations=None):
        """Feed given transitions through the LSTM as if the agent had taken them (`ADAgent.prompt`'s shapes)."""
        acts = np.asarray(actions)
        batch = acts if acts.ndim == 2 else acts[None]
        obs = np.asarray(observations)
        obs = obs if acts.ndim == 2 else obs[None]
        rew = np.asarray(rewards, dtype=np.float32).reshape(batch.shape)
        ended = np.asarray(dones, dtype=bool).reshape(batch.shape)
        if batch.dtype.kind not in "iu" or (batch < 0).any() or (batch >= self.encoder.n_actions).any():
            raise ValueError(f"actions must be integers in [0, {self.encoder.n_actions}), got {actions!r}")
        shape = self.observation_space.shape
        if obs.shape != (*batch.shape, *shape) or not np.isfinite(rew).all():
            raise ValueError(f"observations must have shape {(*batch.shape, *shape)} and rewards be finite")
        if not all(self.observation_space.contains(o) for o in obs.reshape(-1, *shape).astype(np.int64)):
            raise ValueError(f"prompt observations outside {self.env_id}'s observation space {self.observation_space}")
        state = state or self.new_context(len(batch))
        for t in range(batch.shape[1]):
            self.predict(obs[:, t], state)
            state.last_actions = batch[:, t].astype(np.int64)
            self.observe(rew[:, t], ended[:, t], state=state)
        return state


# -- the method -----------------------------------------------------------------------------------


@register
@dataclass
class RL2(Method):
    name = "RL2"
    slug = "rl2"
    summary = "RL²: a recurrent policy (RecurrentPPO) meta-trained across trials of the training tasks"

    config: RL2Config = field(default_factory=RL2Config)

    def work(self) -> float:
        return self.config.total_steps / 7500  # one core meta-trains ~7,500 env steps in the time of an update of AD's

    def budget(self) -> str:
        return f"{self.config.total_steps:,} env steps of meta-training"

    def check(self, data: RunData) -> None:
        probe = gym.make(data.env_id)
        try:
            StepEncoder(probe.observation_space, int(probe.action_space.n))
        finally:
            probe.close()

    def train(self, data: RunData, out: Path, seed: int = 0, progress: bool = True,
              provenance: dict[str, Any] | None = None) -> Path:
        from sb3_contrib import RecurrentPPO
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.vec_env import DummyVecEnv

        out = Path(out)
        path = out / "checkpoint.pt"
        config = dataclasses.replace(self.config, seed=seed)
        if path.exists():  # written only when meta-training has finished
            meta, _ = load_checkpoint(path)
            if (meta.get("kind") == KIND and meta.get("env_id") == canonical_env_id(data.env_id)
                    and _stored_config(meta["rl2"]) == config):  # settings stored under older names count as theirs
                return path  # finished with these settings: nothing to redo
            raise ValueError(f"{path} holds a model trained with other settings; train into another folder")
        train_tasks = list(tasks(data.env_id, "train"))
        venv = DummyVecEnv([lambda i=i: TrialEnv(data.env_id, train_tasks, config.episodes_per_trial)
                            for i in range(config.n_envs)])
        venv.seed(config.seed)
        model = RecurrentPPO(
            _trial_policy_class(), venv, n_steps=config.n_steps, batch_size=config.batch_size, n_epochs=config.n_epochs,
            learning_rate=config.learning_rate, gamma=config.gamma, gae_lambda=config.gae_lambda, ent_coef=config.ent_coef,
            policy_kwargs={"net_arch": list(config.net_arch), "lstm_hidden_size": config.lstm_hidden_size,
                           **_critic_kwargs(config)},
            seed=config.seed, verbose=0, device="cpu",
        )
        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a folder in the temp dir
        curve = _trial_returns(config.total_steps, progress)
        model.learn(config.total_steps, callback=curve, progress_bar=False)
        curve.bar.close()
        meta = {
            "kind": KIND, "method": self.name, "env_id": canonical_env_id(data.env_id), "rl2": config.to_dict(),
            "train_tasks": train_tasks, "finished": True, "meta_training": curve.log,
            "provenance": stamped(provenance),
        }
        out.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(path, meta, {"policy": model.policy.state_dict()})

    @classmethod
    def load_agent(cls, path: str | os.PathLike, **kwargs):
        return RL2Agent.load(path, **kwargs)


def _trial_returns(total_steps: int, progress: bool):
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    from ad_gym import stages

    class TrialReturns(BaseCallback):
        """The meta-training curve, one point per rollout: against env steps, the mean return per
        trial and per episode of the trial's first and last episode (the within-trial rise RL² is
        meant to learn)."""

        def __init__(self):
            super().__init__()
            self.bar = tqdm(total=total_steps, desc="meta-train RL2", unit="step", disable=not progress,
                            position=stages.BAR_POSITION)
            self.log: list[dict[str, float]] = []
            self.returns: list[float] = []
            self.firsts: list[float] = []
            self.lasts: list[float] = []
            self.running = self.episode_return = self.first_return = self.episode_index = None

        def _on_step(self) -> bool:
            rewards, dones = self.locals["rewards"], self.locals["dones"]
            episode_ended = dones | (self.locals["new_obs"][:, -1] > 0.5)  # the encoder's last feature: episode ended
            if self.running is None:
                self.running, self.episode_return, self.first_return = (np.zeros(len(rewards)) for _ in range(3))
                self.episode_index = np.zeros(len(rewards), dtype=np.int64)
            self.running += rewards
            self.episode_return += rewards
            for i in np.flatnonzero(episode_ended):
                if self.episode_index[i] == 0:
                    self.first_return[i] = self.episode_return[i]
                if dones[i]:  # the three figures of a point are over the same trials
                    self.firsts.append(float(self.first_return[i]))
                    self.lasts.append(float(self.episode_return[i]))
                    self.returns.append(float(self.running[i]))
                    self.running[i], self.episode_index[i] = 0.0, 0
                else:
                    self.episode_index[i] += 1
                self.episode_return[i] = 0.0
            return True

        def _on_rollout_end(self) -> None:
            self.bar.n = min(int(self.num_timesteps), total_steps)
            self.bar.refresh()
            if self.returns:
                self.log.append({"steps": int(self.num_timesteps), "trial_return": float(np.mean(self.returns)),
                                 "first_episode": float(np.mean(self.firsts)), "last_episode": float(np.mean(self.lasts))})
                self.returns, self.firsts, self.lasts = [], [], []

    return TrialReturns()
