"""Training the AD model: a real (tiny) run, resuming, checkpoints, and bad input."""

import csv
import dataclasses

import numpy as np
import pytest
import torch

from ad_gym.checkpoints import load_checkpoint
from ad_gym.cli import main
from ad_gym.data.histories import load_histories
from ad_gym.data.windows import SequenceSampler, build_sequences
from ad_gym.sources.collect import collect
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig, lr_at, train
from tests.conftest import TINY_SOURCE, TINY_TRAIN


def test_training_logs_train_and_validation_loss(tiny_checkpoint):
    meta, payload = load_checkpoint(tiny_checkpoint)
    assert meta["finished"] and meta["update"] == TINY_TRAIN.updates
    assert [e["update"] for e in meta["log"]] == [10, 20, 30]
    assert all(e["val_loss"] > 0 for e in meta["log"])
    assert "optimizer" not in payload  # a finished checkpoint keeps only what inference needs
    assert meta["val_tasks"] and not set(map(str, meta["val_tasks"])) & set(map(str, meta["train_tasks"]))


def test_training_writes_its_log_as_csv_and_a_plot(tiny_checkpoint):
    meta, _ = load_checkpoint(tiny_checkpoint)
    with open(tiny_checkpoint.parent / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["update", "loss", "val_loss", "lr", "updates_per_s", "seconds"]
    assert [int(r["update"]) for r in rows] == [10, 20, 30]
    for row, entry in zip(rows, meta["log"]):
        assert float(row["val_loss"]) == entry["val_loss"] and float(row["loss"]) == entry["loss"]
        assert float(row["lr"]) == lr_at(int(row["update"]) - 1, TINY_TRAIN) and float(row["updates_per_s"]) > 0
    assert (tiny_checkpoint.parent / "training.png").stat().st_size > 1000


def test_a_resumed_run_continues_the_checkpoints_log(tiny_histories, tmp_path):
    # Rows logged after the last checkpoint of a killed run are dropped: the resumed run relogs them.
    config = dataclasses.replace(TINY_TRAIN, updates=20, eval_every=5, checkpoint_every=10)
    train(tiny_histories[0], tmp_path / "run", config, progress=False, until=10, log_dir=tmp_path / "logs")
    log = tmp_path / "logs" / "train_log.csv"
    log.write_text(log.read_text() + "15,9.9,,0.001,1.0,1.0\n")  # as if logged after the checkpoint
    train(tiny_histories[0], tmp_path / "run", config, progress=False, log_dir=tmp_path / "logs")
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["update"]) for r in rows] == [5, 10, 15, 20] and float(rows[2]["loss"]) != 9.9
    assert not (tmp_path / "run" / "train_log.csv").exists()


def test_interrupted_training_resumes_to_the_same_weights(tiny_histories, tmp_path):
    train_dir, _ = tiny_histories
    config = dataclasses.replace(TINY_TRAIN, updates=20, eval_every=20)
    straight = train(train_dir, tmp_path / "straight", config, progress=False)
    partial = train(train_dir, tmp_path / "resumed", config, progress=False, until=10)
    assert not load_checkpoint(partial)[0]["finished"]
    resumed = train(train_dir, tmp_path / "resumed", config, progress=False)
    a, b = load_checkpoint(straight)[1]["model"], load_checkpoint(resumed)[1]["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_an_unfinished_checkpoint_loaded_and_saved_by_the_agent_still_resumes(tiny_histories, tmp_path):
    from ad_gym.agents import ADAgent

    train_dir, _ = tiny_histories
    config = dataclasses.replace(TINY_TRAIN, updates=20, eval_every=20)
    straight = train(train_dir, tmp_path / "straight", config, progress=False)
    partial = train(train_dir, tmp_path / "partial", config, progress=False, until=10)
    (tmp_path / "copy").mkdir()
    ADAgent.load(partial).save(tmp_path / "copy")  # a folder: copy/checkpoint.pt
    assert not load_checkpoint(tmp_path / "copy" / "checkpoint.pt")[0]["finished"]
    resumed = train(train_dir, tmp_path / "copy", config, progress=False)
    a, b = load_checkpoint(straight)[1]["model"], load_checkpoint(resumed)[1]["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_a_finished_run_is_never_overwritten(tiny_checkpoint, tiny_histories):
    before = tiny_checkpoint.stat().st_mtime_ns
    train(tiny_histories[0], tiny_checkpoint.parent, TINY_TRAIN, val_path=tiny_histories[1], progress=False)
    assert tiny_checkpoint.stat().st_mtime_ns == before


def test_other_settings_in_the_same_folder_are_refused(tiny_checkpoint, tiny_histories):
    with pytest.raises(ValueError, match="other settings"):
        train(tiny_histories[0], tiny_checkpoint.parent, dataclasses.replace(TINY_TRAIN, lr=0.1), progress=False)


def test_other_histories_in_the_same_folder_are_refused(tiny_checkpoint, tiny_histories):
    with pytest.raises(ValueError, match="other histories"):  # same settings, no validation tasks
        train(tiny_histories[0], tiny_checkpoint.parent, TINY_TRAIN, progress=False)
    with pytest.raises(ValueError, match="other histories"):  # other training tasks
        train(tiny_histories[1], tiny_checkpoint.parent, TINY_TRAIN, val_path=tiny_histories[0], progress=False)


def test_histories_too_short_for_the_context_are_refused(tiny_histories, tmp_path):
    # 2 streams x 30 episodes x 20 steps = 600 tokens per stream
    with pytest.raises(ValueError, match="shorter than the training sequence"):
        train(tiny_histories[0], tmp_path, dataclasses.replace(TINY_TRAIN, context_len=700, seq_len=700), progress=False)


def test_validation_tasks_must_be_held_out(tiny_histories, tmp_path):
    with pytest.raises(ValueError, match="also appear"):
        train(tiny_histories[0], tmp_path, TINY_TRAIN, val_path=tiny_histories[0], progress=False)


def test_several_folders_are_trained_on_together(tiny_histories, tmp_path):
    # A second collection of the same goals with another seed: two learners' histories per goal.
    second = tmp_path / "seed1"
    collect("DarkRoom-v0", second, split="train", config=TINY_SOURCE, seed=1, max_tasks=2, workers=1, progress=False)
    config = dataclasses.replace(TINY_TRAIN, updates=10, eval_every=10)
    changed = {k: v for k, v in dataclasses.asdict(config).items() if v != getattr(TrainConfig(), k)}
    argv = ["train", str(tiny_histories[0]), str(second), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv + [arg for k, v in changed.items() for arg in ("--set", f"{k}={v}")]) == 0
    meta, _ = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert meta["finished"] and len(meta["train_tasks"]) == 4  # 2 goals x 2 learners
    assert len(set(map(str, meta["train_tasks"]))) == 2


def test_histories_of_several_envs_are_refused(tiny_histories, tmp_path):
    bandit = tmp_path / "bandit"
    collect("AdversarialBandit-v0", bandit, config=SourceConfig(algo="ucb", n_streams=1, total_steps=100), max_tasks=1,
            workers=1, progress=False)
    with pytest.raises(ValueError, match="mixes histories of several envs"):
        train([tiny_histories[0], bandit], tmp_path / "run", TINY_TRAIN, progress=False)
    with pytest.raises(ValueError, match="no histories given"):
        train([], tmp_path / "run", TINY_TRAIN, progress=False)


def test_final_obs_needs_histories_with_next_observations(tiny_histories, tmp_path):
    old = [dataclasses.replace(h, next_observations=None) for h in load_histories(tiny_histories[0])]
    with pytest.raises(ValueError, match="recorded without next_observations"):
        train(old, tmp_path / "run", dataclasses.replace(TINY_TRAIN, final_obs=True), progress=False)
    assert not (tmp_path / "run").exists()


def test_sequences_follow_the_history_and_subsample_episodes(tiny_histories):
    history = load_histories(tiny_histories[0])[0]
    sequences = build_sequences([history], n_actions=5, every_k=3)
    assert len(sequences.starts) == history.n_streams
    first = slice(sequences.starts[0], sequences.ends[0])
    kept_episodes = list(range(0, 30, 3))
    assert sequences.ends[0] - sequences.starts[0] == 20 * len(kept_episodes)
    actions = history.actions[0].reshape(30, 20)[kept_episodes].reshape(-1)
    assert (sequences.actions[first] == actions).all()
    # the previous action/reward cross the boundary between kept episodes
    assert sequences.prev_actions[first][20] == actions[19]
    assert sequences.prev_actions[first][0] == 5  # nothing before the first step
    # final_obs: what the previous action led to; at a kept episode's first token, the view the
    # previous kept episode ended on, elsewhere the token's own observation
    final_obs, obs = sequences.final_obs[first], sequences.obs[first]
    np.testing.assert_array_equal(final_obs[20], history.next_observations[0, 19])
    np.testing.assert_array_equal(final_obs[40], history.next_observations[0, 3 * 20 + 19])
    inside = np.arange(len(obs)) % 20 != 0
    np.testing.assert_array_equal(final_obs[inside], obs[inside])
    sampler = SequenceSampler(sequences, seq_len=50, generator=torch.Generator().manual_seed(0))
    batch = sampler.sample(4)
    assert batch["obs"].shape == (4, 50, 2) and batch["actions"].shape == (4, 50)


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(updates=100, warmup=10, lr=1e-3)
    assert lr_at(0, config) == pytest.approx(1e-4)
    assert lr_at(9, config) == pytest.approx(1e-3)
    assert lr_at(55, config) == pytest.approx(5e-4)
    assert lr_at(100, config) == pytest.approx(0.0)


@pytest.mark.parametrize("kwargs", [
    {"every_k": 0}, {"context_len": 80, "seq_len": 40}, {"lr": -1.0}, {"batch_size": "32"}, {"batch_size": 2.5},
    {"threads": -1}, {"expert_episodes": -1}, {"warmup": -1}, {"label_smoothing": 2.0}, {"dropout": 1.0},
    {"grad_clip": 0.0},
])
def test_bad_train_config_is_refused(kwargs):
    with pytest.raises((ValueError, TypeError)):
        TrainConfig(**kwargs)


def test_a_diverged_run_stops_with_a_clear_error_and_is_never_marked_finished(tiny_histories, tmp_path):
    config = dataclasses.replace(TINY_TRAIN, lr=1e3, updates=30, checkpoint_every=5)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(tiny_histories[0], tmp_path / "run", config, progress=False)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    if checkpoint.exists():  # the state before the divergence, to resume from: finite and unfinished
        meta, payload = load_checkpoint(checkpoint)
        assert not meta["finished"] and all(torch.isfinite(t).all() for t in payload["model"].values())


@pytest.mark.parametrize("field", ["lr", "weight_decay", "grad_clip"])
def test_non_finite_settings_are_refused(field):
    with pytest.raises(ValueError, match=f"{field} must be finite"):
        TrainConfig(**{field: float("inf")})
