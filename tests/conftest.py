"""Shared fixtures: a tiny real collection and a tiny trained AD model, built once per session."""

import dataclasses

import pytest

from ad_gym.sources.collect import collect
from ad_gym.sources.sb3 import SourceConfig
from ad_gym.training import TrainConfig, train

TINY_SOURCE = SourceConfig(n_streams=2, total_steps=1200)  # 30 episodes per stream
TINY_TRAIN = TrainConfig(
    context_len=40, seq_len=60, n_layer=2, n_head=2, n_embd=32, ffn_dim=64, batch_size=8, updates=30,
    warmup=5, eval_every=10, checkpoint_every=10, threads=1,
)


@pytest.fixture(scope="session")
def tiny_histories(tmp_path_factory):
    """(train folder, test folder) of real A2C histories on Dark Room: 2 train goals, 1 held-out goal."""
    root = tmp_path_factory.mktemp("histories")
    collect("DarkRoom-v0", root / "train", split="train", config=TINY_SOURCE, max_tasks=2, workers=1, progress=False)
    collect("DarkRoom-v0", root / "test", split="test", config=TINY_SOURCE, max_tasks=1, workers=1, progress=False)
    return root / "train", root / "test"


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_histories, tmp_path_factory):
    train_dir, test_dir = tiny_histories
    return train(train_dir, tmp_path_factory.mktemp("run"), TINY_TRAIN, val_path=test_dir, progress=False)


@pytest.fixture(scope="session")
def final_obs_checkpoint(tiny_histories, tmp_path_factory):
    """The tiny model that also reads the view each episode ended on."""
    return train(tiny_histories[0], tmp_path_factory.mktemp("final_obs"), dataclasses.replace(TINY_TRAIN, final_obs=True),
                 progress=False)
