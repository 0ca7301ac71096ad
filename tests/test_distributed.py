"""Training on any device and on several torchrun ranks (gloo on the CPU)."""

import csv
import dataclasses
import os
import subprocess
import sys

import pytest
import torch

from ad_gym.checkpoints import load_checkpoint
from ad_gym.distributed import World, resolve_device
from ad_gym.training import TrainConfig, train
from tests.conftest import TINY_TRAIN


def losses(folder):
    with open(folder / "train_log.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_on_a_machine_without_one_is_refused_naming_it(tiny_histories, tmp_path):
    for device in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"device='{device}' asks for a CUDA GPU, but torch sees none"):
            train(tiny_histories[0], tmp_path / device, dataclasses.replace(TINY_TRAIN, device=device), progress=False)
    assert not (tmp_path / "cuda" / "checkpoint.pt").exists()
    assert resolve_device("auto") == torch.device("cpu")


def test_bad_devices_and_precisions_are_refused_up_front():
    with pytest.raises(ValueError, match="TrainConfig.device must be"):
        TrainConfig(device="gpu")
    with pytest.raises(ValueError, match="TrainConfig.precision must be"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="multiple of 3"):
        World(rank=0, size=3).share(8)


def test_where_a_run_trains_does_not_stop_it_resuming(tiny_histories, tmp_path):
    """device, precision and threads say how a run computes: a resume may change them."""
    config = dataclasses.replace(TINY_TRAIN, updates=20)
    train(tiny_histories[0], tmp_path, config, progress=False, until=10)
    path = train(tiny_histories[0], tmp_path, dataclasses.replace(config, threads=2, device="cpu", precision="fp32"),
                 progress=False)
    meta, payload = load_checkpoint(path)
    assert meta["finished"] and meta["update"] == 20
    assert all(t.device.type == "cpu" for t in payload["model"].values())
    with pytest.raises(ValueError, match="other settings"):  # what the model is still counts
        train(tiny_histories[0], tmp_path, dataclasses.replace(config, lr=2e-3), progress=False)


def test_bf16_autocast_trains_on_the_cpu(tiny_histories, tmp_path):
    path = train(tiny_histories[0], tmp_path, dataclasses.replace(TINY_TRAIN, updates=5, precision="bf16"), progress=False)
    meta, payload = load_checkpoint(path)
    assert meta["finished"] and all(t.dtype == torch.float32 for t in payload["model"].values())  # fp32 weights


def test_two_torchrun_ranks_follow_one_process_at_the_same_global_batch(tiny_histories, tmp_path):
    settings = {"context_len": 40, "seq_len": 60, "n_layer": 2, "n_head": 2, "n_embd": 32, "ffn_dim": 64,
                "batch_size": 8, "updates": 12, "warmup": 3, "eval_every": 1, "checkpoint_every": 5, "threads": 1}
    one = tmp_path / "one"
    train(tiny_histories[0], one, TrainConfig(**settings), progress=False)
    two = tmp_path / "two"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ad_gym",
               "train", str(tiny_histories[0]), "--out", str(two), "--no-progress"]
    command += [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(losses(two)) == 12
    assert losses(two) == pytest.approx(losses(one), abs=1e-3)  # the same curve, up to float sums
    meta_one, weights_one = load_checkpoint(one / "checkpoint.pt")
    meta_two, weights_two = load_checkpoint(two / "checkpoint.pt")
    assert meta_two["finished"] and meta_two["update"] == 12
    for name, tensor in weights_one["model"].items():
        torch.testing.assert_close(weights_two["model"][name], tensor, atol=1e-4, rtol=0)
