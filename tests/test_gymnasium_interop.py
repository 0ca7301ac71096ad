"""Gymnasium's conventions, as users meet them. Every registered id, typed plainly, works in SB3's
SubprocVecEnv and Gymnasium's async vector env under the start methods users get by default
(forkserver on Linux, spawn on macOS and Windows): each worker learns the ids by re-importing the
user's script, which imports ad_gym; with no script to import (``python -c``, notebooks),
Gymnasium's ``"ad_gym:DarkRoom-v0"`` form imports it in the worker. And every spec says its
episode length."""

import subprocess
import sys

import numpy as np
import pytest

import ad_gym

SCRIPT = """
import sys

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

import ad_gym

if __name__ == "__main__":
    method = sys.argv[1]
    for env_id in ad_gym.env_ids():
        venv = make_vec_env(env_id, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv, vec_env_kwargs={"start_method": method})
        venv.reset()
        venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
        venv.close()
        envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="async", vector_kwargs={"context": method})
        envs.reset(seed=0)
        envs.step(envs.action_space.sample())
        envs.close()
        print(env_id, "ok", flush=True)
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_every_plain_id_steps_in_subprocess_vector_envs(method, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[0] for line in done.stdout.splitlines()] == ad_gym.env_ids()


def test_without_a_script_to_import_async_takes_the_plain_id_and_subproc_the_module_prefix():
    code = ("import numpy as np, gymnasium as gym, ad_gym; from stable_baselines3.common.env_util import make_vec_env; "
            "from stable_baselines3.common.vec_env import SubprocVecEnv; "
            "envs = gym.make_vec('DarkRoom-v0', num_envs=2, vectorization_mode='async', vector_kwargs={'context': 'spawn'}); "
            "envs.reset(seed=0); envs.step(np.array([0, 1])); envs.close(); "
            "venv = make_vec_env('ad_gym:DarkRoom-v0', n_envs=2, vec_env_cls=SubprocVecEnv, "
            "vec_env_kwargs={'start_method': 'spawn'}); venv.reset(); venv.step(np.array([0, 1])); venv.close(); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


@pytest.mark.parametrize("env_id", ad_gym.env_ids())
def test_the_spec_says_the_episode_length_and_follows_max_steps(env_id):
    import gymnasium as gym
    from gymnasium.wrappers import TimeAwareObservation

    env = gym.make(env_id)
    assert env.spec.max_episode_steps == env.unwrapped.max_steps > 0
    longer = gym.make(env_id, max_steps=2 * env.unwrapped.max_steps)  # no registered TimeLimit cuts it short
    assert longer.spec.max_episode_steps == 2 * env.unwrapped.max_steps
    longer.reset(seed=0)
    steps, done = 0, False
    while not done:
        _, _, terminated, truncated, _ = longer.step(0)
        steps, done = steps + 1, terminated or truncated
    assert steps == 2 * env.unwrapped.max_steps or terminated
    TimeAwareObservation(env)  # reads spec.max_episode_steps
    assert gym.make(env.spec).spec.max_episode_steps == env.unwrapped.max_steps  # recreated from its spec


def play_vector(mode: str, steps: int = 60):
    """The shipped Dark Room agent over ``steps`` steps of two Gymnasium vector envs in ``mode``."""
    import gymnasium as gym

    from ad_gym.agents import ADAgent, ADContextVectorWrapper

    agent = ADAgent.load("darkroom", seed=0)
    envs = ADContextVectorWrapper(gym.make_vec("DarkRoom-v0", num_envs=2, vectorization_mode="sync",
                                               vector_kwargs={"autoreset_mode": mode}, goal=(0, 5)), agent)
    obs, _ = envs.reset(seed=0)
    state, ends = None, 0
    for _ in range(steps):
        actions, state = agent.predict(obs, state)
        obs, _, terminated, truncated, infos = envs.step(actions)
        ends += int(np.logical_or(terminated, truncated).sum())
        if np.logical_or(terminated, truncated).any():
            assert "final_obs" in infos
    return state.transitions(), ends


def test_gymnasium_vector_envs_feed_the_same_context_in_every_autoreset_mode():
    next_step, ends = play_vector("NextStep")
    same_step, _ = play_vector("SameStep")
    assert ends == 2 * 3  # three 20-step episodes per env
    assert next_step["obs"].shape[:2] == (2, 60)  # one token per step: no token for a final view
    for name in next_step:
        np.testing.assert_array_equal(next_step[name], same_step[name], err_msg=name)
