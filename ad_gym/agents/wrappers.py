"""Vector-env wrappers that feed each step's rewards into an in-context agent's context: one for
SB3's VecEnvs, one for Gymnasium's vector envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper


class ADContextWrapper(VecEnvWrapper):
    """Pass every step's rewards, episode ends and the views episodes ended on to ``agent.observe``.

    SB3's ``evaluate_policy`` (and any loop built on ``predict``) never hands rewards to the
    policy; with this wrapper it works unchanged, for any number of envs:

        venv = ADContextWrapper(make_vec_env("DarkRoom-v0", n_envs=4, env_kwargs={"goal": (1, 7)}), agent)
        evaluate_policy(agent, venv, n_eval_episodes=40)
    """

    def __init__(self, venv: VecEnv, agent):
        agent.check_spaces(venv)
        super().__init__(venv)
        self.agent = agent

    def reset(self):
        # Every env starts afresh: so does the agent's context (a new task, as far as it can tell).
        self.agent.reset()
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        # A VecEnv resets an ended env at once; the view it ended on is in the step's info.
        next_obs = np.array(obs, copy=True)
        for i in np.flatnonzero(dones):
            if "terminal_observation" in infos[i]:
                next_obs[i] = infos[i]["terminal_observation"]
        self.agent.observe(rewards, dones, next_obs=next_obs)
        return obs, rewards, dones, infos


class ADContextVectorWrapper(gym.vector.VectorWrapper):
    """`ADContextWrapper`'s twin for Gymnasium's vector envs (`gym.make_vec`, `SyncVectorEnv`,
    `AsyncVectorEnv`), in every autoreset mode:

        envs = ADContextVectorWrapper(gym.make_vec("DarkRoom-v0", num_envs=4, goal=(1, 7)), agent)
        obs, _ = envs.reset(seed=0)
        for _ in range(1000):
            actions, _ = agent.predict(obs)
            obs, rewards, terminated, truncated, infos = envs.step(actions)

    Every step's rewards, episode ends and the views episodes ended on go to ``agent.observe``. In
    next-step mode (Gymnasium's default) an env that ended would return its final view and ignore
    the next action; the agent would act on that view, a token that is no step of any episode. So
    the wrapper resets such envs at once (``reset_mask``), as same-step mode does: the observation
    after an end is the next episode's first, and the final view is in ``infos["final_obs"]``.
    """

    def __init__(self, env: gym.vector.VectorEnv, agent):
        agent.check_spaces(env)
        super().__init__(env)
        self.agent = agent
        self.mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))

    def reset(self, *, seed=None, options=None):
        if not (options and "reset_mask" in options):  # a partial reset keeps the other envs' tasks
            self.agent.reset()
        return self.env.reset(seed=seed, options=options)

    def step(self, actions):
        obs, rewards, terminations, truncations, infos = self.env.step(actions)
        dones = np.logical_or(terminations, truncations)
        final_obs = np.array(obs, copy=True)
        if self.mode == AutoresetMode.SAME_STEP:
            for i in np.flatnonzero(dones):
                final_obs[i] = infos["final_obs"][i]
        self.agent.observe(rewards, dones, next_obs=final_obs)
        if self.mode == AutoresetMode.NEXT_STEP and dones.any():
            obs, reset_infos = self.env.reset(options={"reset_mask": dones})
            infos = {**infos, "final_obs": final_obs, "_final_obs": dones, "reset_info": reset_infos}
        return obs, rewards, terminations, truncations, infos
