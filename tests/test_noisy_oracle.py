"""The noisy oracle (`oracle-eps`): AD-ε's histories and DPT's exploration contexts."""

import numpy as np
import pytest

from ad_gym.cli import main
from ad_gym.data.histories import load_histories
from ad_gym.sources.noisy_oracle import NoiseSchedule
from ad_gym.sources.sb3 import SourceConfig, learn_task


def noisy(**hyperparams) -> SourceConfig:
    return SourceConfig(algo="oracle-eps", n_streams=4, total_steps=4 * 20 * 20, hyperparams=hyperparams)


def returns(env_id: str, task: dict, config: SourceConfig) -> np.ndarray:
    return np.stack(learn_task(env_id, task, config).episode_returns())  # (streams, episodes)


def test_the_schedule_decays_from_start_to_end():
    linear = NoiseSchedule(eps_start=1.0, eps_end=0.1, decay_episodes=10)
    np.testing.assert_allclose(linear.eps([0, 5, 10, 50]), [1.0, 0.55, 0.1, 0.1])
    faster = NoiseSchedule(decay_episodes=10, power=2.0)
    np.testing.assert_allclose(faster.eps([0, 5, 10]), [1.0, 0.25, 0.0])


@pytest.mark.parametrize("bad", [{"eps_start": 1.5}, {"eps_end": -0.1}, {"decay_episodes": 0}, {"power": 0},
                                 {"decoy": 1}, {"true_prob": 2}, {"colour": "red"}])
def test_bad_settings_are_clear_errors(bad):
    with pytest.raises((ValueError, TypeError)):
        noisy(**bad)


def test_without_noise_it_is_the_oracle_and_with_full_noise_a_random_walk():
    task = {"goal": (2, 2)}  # 4 steps from the start: the oracle earns 17 per episode
    assert (returns("DarkRoom-v0", task, noisy(eps_start=0.0, eps_end=0.0)) == 17).all()
    random_walk = returns("DarkRoom-v0", task, noisy(eps_start=1.0, eps_end=1.0))
    assert random_walk.mean() < 3
    decaying = returns("DarkRoom-v0", task, noisy(decay_episodes=10))
    assert decaying[:, :3].mean() < 5 and (decaying[:, 10:] == 17).all()  # noise gone after 10 episodes


@pytest.mark.parametrize("env_id, task", [("DarkKeyToDoor-v1", {"key": (1, 1), "door": (7, 7)}),
                                          ("AdversarialBandit-v0", None)])
def test_it_works_for_any_family_with_an_oracle(env_id, task):
    from ad_gym.envs.tasks import tasks

    task = task or tasks(env_id, "train")[0]
    clean = returns(env_id, task, SourceConfig(algo="oracle-eps", n_streams=2, total_steps=2000, hyperparams={"eps_start": 0.0}))
    noisy_returns = returns(env_id, task, SourceConfig(algo="oracle-eps", n_streams=2, total_steps=2000, hyperparams={"eps_end": 1.0}))
    assert clean.mean() > noisy_returns.mean()


def test_decoys_head_elsewhere_unless_told_to_head_for_the_true_target():
    task = {"goal": (0, 0)}
    decoys = returns("DarkRoom-v0", task, noisy(decoy=True, eps_start=0.0, eps_end=0.0))
    assert decoys.mean() < 3  # other cells' oracles rarely pass the far corner
    true = returns("DarkRoom-v0", task, noisy(decoy=True, eps_start=0.0, eps_end=0.0, true_prob=1.0))
    assert (true == 13).all()  # 8 steps to the corner, then 13 steps on it


def test_cli_collects_noisy_oracle_histories(tmp_path, capsys):
    out = tmp_path / "noisy"
    code = main(["collect", "DarkRoom-v0", "--algo", "oracle-eps", "--hp", "decay_episodes=5", "--max-tasks", "1",
                 "--steps", "400", "--streams", "2", "--workers", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    (history,) = load_histories(out)
    assert history.metadata["source"]["algo_kwargs"]["decay_episodes"] == 5
    assert history.n_streams == 2 and history.n_steps == 200


def test_resampling_decoys_explore_like_posterior_sampling():
    """With resample, a decoy never waits on a target it reached unpaid, and once paid it stays
    on the goal for the rest of the episode."""
    task = {"goal": (8, 8)}
    history = learn_task("DarkRoom-v0", task, noisy(decoy=True, resample=True, eps_start=0.0, eps_end=0.0))
    obs, rewards = np.asarray(history.observations), history.rewards
    assert (rewards.sum(axis=1) > 0).all()  # every stream finds the far corner in 20 episodes
    for s in range(history.n_streams):
        found = np.flatnonzero(rewards[s] > 0)
        before = found[0] if len(found) else len(rewards[s])
        stays = (obs[s, 1:before] == obs[s, : before - 1]).all(axis=1) & ~history.dones[s, : before - 1]
        assert not stays.any()  # unpaid, it never stands still
        rest_of_episode = ~history.dones[s, before:].cumsum().astype(bool)
        assert (rewards[s, before:][rest_of_episode] > 0).all()  # paid once: it stays on the goal
    waits = learn_task("DarkRoom-v0", task, noisy(decoy=True, eps_start=0.0, eps_end=0.0))
    o = np.asarray(waits.observations)
    assert ((o[:, 1:] == o[:, :-1]).all(axis=2) & (waits.rewards[:, 1:] == 0)).any()  # without: it waits on them


def test_resampling_decoys_search_for_the_door_once_the_key_is_found():
    """Key-to-Door: the key's hypotheses first; once paid at the key, the door's are drawn (not
    the true door straight away), and no stream waits unpaid on a door it guessed."""
    task = {"key": (1, 1), "door": (7, 7)}
    config = SourceConfig(algo="oracle-eps", n_streams=4, total_steps=4 * 20 * 50,
                          hyperparams={"decoy": True, "resample": True, "eps_start": 0.0, "eps_end": 0.0})
    history = learn_task("DarkKeyToDoor-v1", task, config)
    obs, rewards, dones = np.asarray(history.observations), history.rewards, history.dones
    to_door = []  # steps from the key's reward to the door's, per episode with both
    for s in range(history.n_streams):
        for episode in np.split(np.arange(dones.shape[1]), np.flatnonzero(dones[s])[:-1] + 1):
            paid = episode[rewards[s, episode] > 0]
            if len(paid) == 2:
                to_door.append(paid[1] - paid[0])
            last = paid[-1] if len(paid) == 2 else episode[-1]
            unpaid = episode[episode < last]
            assert not (obs[s, unpaid[1:]] == obs[s, unpaid[:-1]]).all(axis=1).any()  # it never waits unpaid
    straight = abs(7 - 1) + abs(7 - 1)
    assert to_door and min(to_door) >= straight and max(to_door) > straight  # some doors were searched for


@pytest.mark.parametrize("bad, message", [({"resample": True}, "decoy"), ({"resample": 1, "decoy": True}, "bool")])
def test_resample_settings_are_checked(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        noisy(**bad)


def test_resample_needs_an_oracle_that_knows_when_it_arrived():
    from ad_gym.envs.tasks import tasks

    with pytest.raises(ValueError, match="arrived"):
        learn_task("AdversarialBandit-v0", tasks("AdversarialBandit-v0", "train")[0],
                   noisy(decoy=True, resample=True))


def test_resampled_hypotheses_are_targets_the_stream_has_not_visited():
    import gymnasium as gym

    from ad_gym.envs.dark_room import goal_oracle
    from ad_gym.envs.tasks import tasks
    from ad_gym.sources.noisy_oracle import NoisyOracle

    drawn = []

    def recording_oracle(task_list):
        drawn.append(tuple(task_list[0]["goal"]) if len(task_list) == 1 else None)
        return goal_oracle(task_list)

    decoys = tasks("DarkRoom-v0", "train")
    noisy_oracle = NoisyOracle(recording_oracle, {"goal": (0, 0)}, 1, 5,
                               NoiseSchedule(eps_start=0.0, eps_end=0.0, decoy=True, resample=True), seed=0, decoys=decoys)
    env = gym.make("DarkRoom-v0", goal=(0, 0))
    obs, _ = env.reset(seed=0)
    visited = {tuple(obs)}
    for _ in range(200):
        before = len(drawn)
        action, _ = noisy_oracle.predict(obs[None])
        if len(drawn) > before and drawn[-1] is not None:
            unvisited_left = any(tuple(d["goal"]) not in visited for d in decoys)
            assert drawn[-1] not in visited or not unvisited_left  # a new hypothesis is a cell not seen yet
        obs, reward, terminated, truncated, _ = env.step(int(action[0]))
        noisy_oracle.observe(np.array([reward]), np.array([terminated or truncated]), next_obs=obs[None])
        visited.add(tuple(obs))
        if terminated or truncated:
            obs, _ = env.reset()
    assert len(visited) > 60  # ten episodes cover most of the room


def _episodes(dones_row: np.ndarray) -> list[np.ndarray]:
    return np.split(np.arange(len(dones_row)), np.flatnonzero(dones_row)[:-1] + 1)


def test_remembering_decoys_head_for_what_they_found_in_earlier_episodes():
    """Dark Room: once a stream has found the goal, every later episode walks straight to it;
    before, it searches as posterior sampling does."""
    task = {"goal": (8, 8)}
    schedule = {"decoy": True, "resample": True, "eps_start": 0.0, "eps_end": 0.0}
    history = learn_task("DarkRoom-v0", task, noisy(**schedule, remember=True))
    straight = abs(8 - 4) + abs(8 - 4) - 1  # the step (0-based) whose move reaches it from the centre
    for s in range(history.n_streams):
        paid = [history.rewards[s, e] > 0 for e in _episodes(history.dones[s])]
        first = next(i for i, p in enumerate(paid) if p.any())
        assert all(p.any() and np.argmax(p) == straight for p in paid[first + 1:])
    forgets = learn_task("DarkRoom-v0", task, noisy(**schedule))
    later = [(forgets.rewards[s, e] > 0).any() for s in range(4) for e in _episodes(forgets.dones[s])[10:]]
    assert not all(later)  # without remember, later episodes keep trying other hypotheses


def test_remembering_decoys_find_the_key_then_search_for_the_door():
    """Key-to-Door: a key found before is walked to straight; the door is still searched for
    until found, then every episode earns both."""
    task = {"key": (1, 1), "door": (7, 7)}
    config = SourceConfig(algo="oracle-eps", n_streams=4, total_steps=4 * 20 * 50,
                          hyperparams={"decoy": True, "resample": True, "remember": True, "eps_start": 0.0, "eps_end": 0.0})
    history = learn_task("DarkKeyToDoor-v1", task, config)
    obs, rewards = np.asarray(history.observations), history.rewards
    for s in range(history.n_streams):
        episodes = _episodes(history.dones[s])
        returns = np.array([rewards[s, e].sum() for e in episodes])
        assert returns[-1] == 2  # both found within 20 episodes
        key_found, door_found = np.argmax(returns >= 1), np.argmax(returns >= 2)
        for i, e in enumerate(episodes):
            start, paid = obs[s, e[0], :2], np.flatnonzero(rewards[s, e] > 0)
            if i > key_found and tuple(start) != (1, 1):
                assert paid[0] + 1 == abs(start[0] - 1) + abs(start[1] - 1)  # straight to the key
            if i > door_found:
                assert len(paid) == 2 and paid[1] - paid[0] == abs(7 - 1) + abs(7 - 1)  # then straight to the door


def test_remember_needs_resampling_decoys():
    with pytest.raises(ValueError, match="resampling"):
        noisy(decoy=True, remember=True)


def test_wandering_streams_move_on_once_every_target_has_paid():
    """Without ``wander`` a stream waits on the opened door for the rest of the episode; with it,
    it moves at random there, so waiting on a cell never shows in the histories."""
    task = {"key": (1, 1), "door": (7, 7)}
    schedule = {"decoy": True, "resample": True, "remember": True, "eps_start": 0.0, "eps_end": 0.0}

    def after_door_moves(wander: bool) -> np.ndarray:
        config = SourceConfig(algo="oracle-eps", n_streams=4, total_steps=4 * 20 * 50, hyperparams={**schedule, "wander": wander})
        history = learn_task("DarkKeyToDoor-v1", task, config)
        obs, rewards = np.asarray(history.observations), history.rewards
        moved = []
        for s in range(history.n_streams):
            for e in _episodes(history.dones[s]):
                paid = e[rewards[s, e] > 0]
                if len(paid) == 2:
                    after = np.arange(paid[1] + 1, e[-1] + 1)
                    moved.append((obs[s, after[1:]] != obs[s, after[:-1]]).any(axis=1).mean())
        return np.asarray(moved)

    assert after_door_moves(False).max() == 0.0  # waits on the door
    assert after_door_moves(True).mean() > 0.5  # moves on
    with pytest.raises(ValueError, match="resampling"):
        noisy(decoy=True, wander=True)
