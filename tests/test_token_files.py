"""Datasets larger than memory: training tokens written to files and read batch by batch."""

import dataclasses

import numpy as np
import pytest
import torch

from ad_gym.checkpoints import load_checkpoint
from ad_gym.data import token_files
from ad_gym.data.histories import iter_histories, load_histories
from ad_gym.data.windows import SequenceSampler, build_sequences
from ad_gym.training import train
from tests.conftest import TINY_TRAIN


def test_token_files_give_the_same_batches_as_memory(tiny_histories, tmp_path):
    histories = load_histories(tiny_histories[0], compact=True)
    in_memory = build_sequences(histories, 5, every_k=2, max_episodes=10)
    files = token_files.write_token_files(iter_histories(tiny_histories[0], compact=True), tmp_path, 5, every_k=2,
                                          max_episodes=10)
    assert len(files) == len(in_memory)
    np.testing.assert_array_equal(files.starts, in_memory.starts)
    a = SequenceSampler(in_memory, 30, torch.Generator().manual_seed(3))
    b = SequenceSampler(files, 30, torch.Generator().manual_seed(3))
    assert a.n_segments == b.n_segments
    for _ in range(3):
        batch_a, batch_b = a.sample(8), b.sample(8)
        assert batch_a.keys() == batch_b.keys()
        for name in batch_a:
            assert batch_b[name].dtype == batch_a[name].dtype
            torch.testing.assert_close(batch_b[name], batch_a[name], rtol=0, atol=0)
    np.testing.assert_array_equal(a.sample(6, rows=slice(3, 6))["actions"], b.sample(6)["actions"][3:6])


def test_training_from_disk_matches_training_in_memory_and_reuses_its_files(tiny_histories, tmp_path):
    config = dataclasses.replace(TINY_TRAIN, updates=12, eval_every=4)
    memory = train(tiny_histories[0], tmp_path / "memory", config, progress=False)
    disk = train(tiny_histories[0], tmp_path / "disk", dataclasses.replace(config, data_in="disk"), progress=False)
    (meta_m, weights_m), (meta_d, weights_d) = load_checkpoint(memory), load_checkpoint(disk)
    assert [row["loss"] for row in meta_d["log"]] == [row["loss"] for row in meta_m["log"]]
    assert meta_d["train_tasks"] == meta_m["train_tasks"] and meta_d["source"] == meta_m["source"]
    for name, tensor in weights_m["model"].items():
        torch.testing.assert_close(weights_d["model"][name], tensor, rtol=0, atol=0)
    index = tmp_path / "disk" / "tokens" / token_files.INDEX
    written = index.stat().st_mtime_ns
    assert token_files.stored_key(index.parent)["every_k"] == config.every_k
    # A rerun (here of the finished run) with the same histories and data settings reads the files there.
    assert train(tiny_histories[0], tmp_path / "disk", dataclasses.replace(config, data_in="disk"), progress=False) == disk
    assert index.stat().st_mtime_ns == written
    # A run with other settings is refused before it touches the files of this one.
    with pytest.raises(ValueError, match="other settings"):
        train(tiny_histories[0], tmp_path / "disk", dataclasses.replace(config, data_in="disk", every_k=1), progress=False)
    assert index.stat().st_mtime_ns == written


def test_a_killed_build_is_built_again_and_history_objects_are_refused(tiny_histories, tmp_path):
    folder = tmp_path / "run" / "tokens"
    folder.mkdir(parents=True)
    (folder / "obs.bin").write_bytes(b"partial")  # a build killed before its index was written
    path = train(tiny_histories[0], tmp_path / "run", dataclasses.replace(TINY_TRAIN, updates=3, data_in="disk"),
                 progress=False)
    assert load_checkpoint(path)[0]["finished"] and token_files.stored_key(folder) is not None
    with pytest.raises(ValueError, match="pass their paths, not History objects"):
        train(load_histories(tiny_histories[0]), tmp_path / "objects", dataclasses.replace(TINY_TRAIN, data_in="disk"),
              progress=False)
    with pytest.raises(ValueError, match="data_in must be"):
        dataclasses.replace(TINY_TRAIN, data_in="ssd")
