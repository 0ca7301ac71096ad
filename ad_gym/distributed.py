"""Where training runs: the device, the precision, and the ranks of a ``torchrun`` launch.

One process on the CPU is the default. ``torchrun --nproc_per_node N ad-gym train ...`` (or
``torchrun -m ...`` for your own script calling `ad_gym.training.train`) starts N ranks that train
data-parallel with torch's DistributedDataParallel: gloo on the CPU, nccl on GPUs. Every rank
draws the same global batch and keeps its own equal share of it, so N ranks follow the curve of
one process at the same global batch (up to floating-point sums); rank 0 alone writes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the ranks torchrun started (one rank when not under torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, batch_size: int) -> slice:
        """This rank's rows of a global batch of ``batch_size`` (an equal share each)."""
        if batch_size % self.size:
            raise ValueError(f"the batch of {batch_size} sequences does not split evenly over {self.size} ranks: "
                             f"choose a batch_size that is a multiple of {self.size}")
        per_rank = batch_size // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def torchrun_world() -> World:
    """The ranks from the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK); one rank without them."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(f"torchrun's RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from exc
    if size < 1 or not 0 <= rank < size:
        raise ValueError(f"RANK={rank} is not among WORLD_SIZE={size} ranks")
    return World(rank=rank, size=size, local_rank=local_rank)


def resolve_device(name: str, world: World = World()) -> torch.device:
    """``auto``: a CUDA GPU if torch sees one (under torchrun, the rank's own), else the CPU;
    ``cuda``/``cuda:N``: that GPU, or a ValueError naming it when there is none."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    match = re.fullmatch(r"auto|cuda(?::(\d+))?", name)
    if match is None:
        raise ValueError(f"unknown device {name!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise ValueError(
            f"device={name!r} asks for a CUDA GPU, but torch sees none (torch {torch.__version__} is {build}): "
            "train with device=cpu (or auto), or on a machine with a GPU and a CUDA build of torch (README: Scaling up)"
        )
    index = int(match.group(1)) if match.group(1) is not None else world.local_rank
    if index >= torch.cuda.device_count():
        raise ValueError(f"device={name!r}: there is no CUDA device {index}; torch sees {torch.cuda.device_count()}")
    return torch.device("cuda", index)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, None for plain fp32. ``auto`` is bf16 on
    a GPU that supports it (the matrix products at half the memory traffic) and fp32 elsewhere."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def start(world: World, device: torch.device) -> None:
    """Join the process group of a multi-rank launch (nccl for GPUs, gloo for the CPU)."""
    if world.size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size)


def stop(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.barrier()  # no rank returns before rank 0 has written the checkpoint
        dist.destroy_process_group()


def mean_over_ranks(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a scalar over the ranks (every rank gets it): the global batch's loss."""
    if world.size == 1:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world.size
