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
