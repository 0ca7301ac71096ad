"""VecEnv wrapper that feeds each step's rewards into an in-context agent's context."""

from __future__ import annotations

import numpy as np
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
