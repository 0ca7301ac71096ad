"""ADAgent.prompt: given transitions put into the context, exactly as if the agent had taken them."""

import gymnasium as gym
import numpy as np
import pytest

from ad_gym.agents import ADAgent
from tests.test_agent import play


@pytest.fixture
def agent(tiny_checkpoint):
    return ADAgent.load(tiny_checkpoint, seed=0)


def as_prompt(log, n_steps_per_episode=20):
    """(observations, actions, rewards, dones) of the steps `play` logged (Dark Room: 20-step episodes)."""
    obs, actions, rewards = (np.array(column) for column in zip(*log))
    dones = (np.arange(len(log)) + 1) % n_steps_per_episode == 0
    return obs, actions, rewards, dones


def test_a_prompt_is_the_context_the_agent_would_have_built_itself(agent, tiny_checkpoint):
    played, log = play(agent, 50)
    prompted = ADAgent.load(tiny_checkpoint, seed=0)
    state = prompted.prompt(*as_prompt(log))
    for name, values in played.transitions().items():
        np.testing.assert_array_equal(state.transitions()[name], values)
    np.testing.assert_array_equal(state.steps, played.steps)
    for obs in ([4, 4], [0, 8], [8, 0]):  # and the model reads it the same way
        a, played = agent.predict(np.array(obs), played, deterministic=True)
        b, state = prompted.predict(np.array(obs), state, deterministic=True)
        assert a == b
        agent.observe(0.0, False)
        prompted.observe(0.0, False)


def test_a_batch_prompt_and_a_prompt_that_continues_a_context(agent, tiny_checkpoint):
    _, log = play(agent, 40)
    obs, actions, rewards, dones = as_prompt(log)
    batch = ADAgent.load(tiny_checkpoint, seed=0).prompt(
        np.stack([obs, obs[::-1]]), np.stack([actions, actions[::-1]]), np.stack([rewards, rewards]), np.stack([dones, dones]))
    one = ADAgent.load(tiny_checkpoint, seed=0)
    state = one.prompt(obs[:15], actions[:15], rewards[:15], dones[:15])
    state = one.prompt(obs[15:], actions[15:], rewards[15:], dones[15:], state=state)
    for name, values in state.transitions().items():
        np.testing.assert_array_equal(batch.transitions()[name][:1], values)
    assert batch.n_envs == 2


def test_the_final_view_of_each_prompted_episode_reaches_final_obs_models(final_obs_checkpoint):
    agent = ADAgent.load(final_obs_checkpoint, seed=0)
    played, log = play(agent, 25)
    obs, actions, rewards, dones = as_prompt(log)
    with pytest.raises(ValueError, match="next_observations"):
        ADAgent.load(final_obs_checkpoint, seed=0).prompt(obs, actions, rewards, dones)
    env = gym.make("DarkRoom-v0", goal=(1, 7))  # replay the logged actions for what each step returned
    env.reset(seed=0)
    next_obs = []
    for action, done in zip(actions, dones):
        next_obs.append(env.step(int(action))[0])
        if done:
            env.reset()
    state = ADAgent.load(final_obs_checkpoint, seed=0).prompt(obs, actions, rewards, dones, next_observations=next_obs)
    np.testing.assert_array_equal(state.transitions()["final_obs"], played.transitions()["final_obs"])


@pytest.mark.parametrize("change, error, message", [
    ({"actions": np.array([0, 1, 9])}, ValueError, "actions must be integers"),
    ({"actions": np.array([0.0, 1.0, 2.0])}, ValueError, "actions must be integers"),
    ({"actions": np.array([], dtype=np.int64)}, ValueError, "T >= 1"),
    ({"rewards": np.array([0.0, np.nan, 0.0])}, ValueError, "finite"),
    ({"rewards": np.zeros(2)}, ValueError, "rewards must have shape"),
    ({"dones": np.array([0.5, 0.0, 1.0])}, TypeError, "bool"),
    ({"observations": np.array([[4, 4], [4, 5], [4, 99]])}, ValueError, "outside"),
    ({"observations": np.zeros((3, 3), dtype=np.int64)}, ValueError, "observations must have shape"),
])
def test_a_bad_prompt_is_refused_and_leaves_the_context_as_it_was(agent, change, error, message):
    state = agent.prompt(np.array([[4, 4], [4, 5]]), np.array([3, 3]), np.zeros(2), np.zeros(2, dtype=bool))
    before = state.transitions()
    prompt = {"observations": np.array([[4, 4], [4, 5], [4, 6]]), "actions": np.array([0, 1, 2]),
              "rewards": np.zeros(3), "dones": np.zeros(3, dtype=bool), **change}
    with pytest.raises(error, match=message):
        agent.prompt(**prompt, state=state)
    for name, values in state.transitions().items():
        np.testing.assert_array_equal(values, before[name])


def test_prompt_between_predict_and_observe_is_refused(agent):
    _, state = agent.predict(np.array([4, 4]))
    with pytest.raises(RuntimeError, match="pending reward"):
        agent.prompt(np.array([[4, 4]]), np.array([0]), np.zeros(1), np.zeros(1, dtype=bool), state=state)
    with pytest.raises(ValueError, match="for 2 envs"):
        agent.observe(0.0, False)
        agent.prompt(np.zeros((2, 1, 2), dtype=np.int64), np.zeros((2, 1), dtype=np.int64), np.zeros((2, 1)),
                     np.zeros((2, 1), dtype=bool), state=state)


def test_ucb_counts_prompted_pulls_as_its_own():
    from ad_gym.agents import UCBAgent

    arms = gym.spaces.Discrete(3)
    played, prompted = UCBAgent(arms), UCBAgent(arms)
    log = []
    for reward in (1.0, 0.0, 0.5, 1.0, 0.0):
        action, _ = played.predict(np.zeros(1))
        played.observe(reward)
        log.append((int(action), reward))
    actions, rewards = (np.array(column) for column in zip(*log))
    prompted.prompt(np.zeros((5, 1)), actions, rewards, np.zeros(5, dtype=bool))
    np.testing.assert_array_equal(prompted.pulls, played.pulls)
    np.testing.assert_array_equal(prompted.totals, played.totals)
    assert prompted.predict(np.zeros(1))[0] == played.predict(np.zeros(1))[0]
    with pytest.raises(ValueError, match="arms in"):
        prompted.prompt(np.zeros((1, 1)), np.array([3]), np.zeros(1), np.zeros(1, dtype=bool))


def test_prompts_from_a_history_and_from_another_tasks_oracle(tiny_histories):
    from ad_gym.data.histories import load_histories
    from ad_gym.envs.tasks import tasks
    from ad_gym.prompts import history_prompt, misleading_prompt, stack_prompts

    history = load_histories(tiny_histories[1])[0]
    early = history_prompt(history, 3)
    assert early.dones.sum() == 3 and early.dones[-1] and len(early.actions) == 60  # Dark Room: 20 steps each
    np.testing.assert_array_equal(early.actions, history.actions[0, :60])
    with pytest.raises(ValueError, match="fewer than"):
        history_prompt(history, 10_000)
    wrong = misleading_prompt("DarkRoom-v0", history.task, tasks("DarkRoom-v0", "train")[:5], 2)
    assert wrong.rewards.sum() == 0 and wrong.dones.sum() == 2
    assert set(stack_prompts([early, early])) >= {"observations", "actions", "rewards", "dones"}
    with pytest.raises(ValueError, match="same number of steps"):
        stack_prompts([early, wrong])


def test_play_episodes_plays_on_from_a_prompt(agent, tiny_histories):
    from ad_gym.data.histories import load_histories
    from ad_gym.evaluation import play_episodes
    from ad_gym.prompts import history_prompt, stack_prompts

    history = load_histories(tiny_histories[1])[0]
    prompt = history_prompt(history, 2)
    seen = []
    original = agent.prompt

    def recording_prompt(**keywords):
        seen.append(keywords["actions"].shape)
        return original(**keywords)

    agent.prompt = recording_prompt
    returns = play_episodes(lambda rows: agent, "DarkRoom-v0", [history.task], 2, [0, 1],
                            prompt=lambda rows: stack_prompts([prompt for _ in rows]))
    assert returns.shape == (2, 2) and seen == [(2, 40)]
