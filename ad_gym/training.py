"""Train the AD transformer on stored learning histories (plain action imitation).

    config = TrainConfig(updates=3000, every_k=4)
    train("histories/DarkRoom-v0-train", "runs/ad", config, val_path="histories/DarkRoom-v0-test")

The loop: AdamW, linear warm-up then cosine decay, gradient clipping, cross-entropy on the next
action at every token (with optional label smoothing), a validation loss on histories of
held-out tasks, and a checkpoint every ``checkpoint_every`` updates from which a rerun resumes.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ad_gym import distributed, stages
from ad_gym.atomic import atomic_write, remove_orphaned_temps
from ad_gym.checkpoints import (CHECKPOINT, IMITATION_METHOD, as_json, checkpoint_method, load_checkpoint, save_checkpoint,
                                stamped)
from ad_gym.data import token_files
from ad_gym.data.histories import History, check_one_env, history_files, iter_histories, load_histories, read_history
from ad_gym.data.windows import SequenceSampler, build_sequences
from ad_gym.envs.checks import check_int
from ad_gym.models.transformer import ADConfig, ADTransformer
from ad_gym.settings import setting

# The architecture fields of ADConfig (what the env fixes, such as image_shape, comes from env_shapes).
_MODEL_DEFAULTS = {f.name: f.default for f in fields(ADConfig) if f.default is not MISSING and f.name != "image_shape"}


PRECISIONS = ("auto", "fp32", "bf16")
# How a run computes, not what: resuming with other values is allowed (a run started on a GPU may
# finish on the CPU), and checkpoints compare only the other fields.
RUNTIME_FIELDS = ("device", "precision", "threads", "data_in")

# Fields that count something: integers, at least 1 (warmup and seed: at least 0).
_COUNT_FIELDS = (
    "every_k", "max_episodes", "expert_episodes", "context_len", "seq_len", "n_layer", "n_head", "n_embd", "ffn_dim",
    "batch_size", "updates", "warmup", "eval_every", "val_batches", "checkpoint_every", "seed", "threads",
)


@dataclass
class TrainConfig:
    """How to train: data selection, model architecture, optimisation, bookkeeping.

    The defaults are the Dark Room recipe (benchmarks/results/darkroom_recipe.md); the
    architecture defaults come from `ADConfig`.
    """

    # data
    every_k: int = setting(4, "keep every k-th episode of each stream")
    max_episodes: int | None = setting(25, "keep at most this many (kept) episodes per stream, its learning phase; none: all")
    expert_episodes: int | None = setting(None, "ED: train only on each stream's last N episodes instead")
    context_len: int = setting(_MODEL_DEFAULTS["context_len"], "tokens each prediction attends to, itself included")
    seq_len: int | None = setting(None, "tokens per training sequence (default: 1.5 x context_len)")
    # model
    n_layer: int = setting(_MODEL_DEFAULTS["n_layer"], "transformer blocks")
    n_head: int = setting(_MODEL_DEFAULTS["n_head"], "attention heads per block")
    n_embd: int = setting(_MODEL_DEFAULTS["n_embd"], "token width")
    ffn_dim: int = setting(_MODEL_DEFAULTS["ffn_dim"], "hidden width of each block's feed-forward layer")
    dropout: float = setting(_MODEL_DEFAULTS["dropout"], "dropout on tokens and residual branches")
    attn_dropout: float = setting(_MODEL_DEFAULTS["attn_dropout"], "dropout on attention weights")
    token_mask_prob: float = setting(_MODEL_DEFAULTS["token_mask_prob"], "hide each context token from attention with this probability")
    prev_obs: bool = setting(_MODEL_DEFAULTS["prev_obs"], "each token also embeds the previous observation")
    final_obs: bool = setting(_MODEL_DEFAULTS["final_obs"], "each episode's first token also embeds the view the last one ended on "
                              "(needs histories with next_observations)")
    # optimisation
    label_smoothing: float = setting(0.0, "label smoothing of the next-action cross-entropy")
    batch_size: int = setting(16, "sequences per update")
    updates: int = setting(2000, "optimiser updates")
    lr: float = setting(1e-3, "peak learning rate (AdamW)")
    warmup: int = setting(100, "updates of linear warm-up before the cosine decay")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    grad_clip: float = setting(1.0, "gradient norm clip")
    # bookkeeping
    eval_every: int = setting(250, "updates between validation losses (and log rows)")
    val_batches: int = setting(8, "batches per validation loss")
    checkpoint_every: int = setting(250, "updates between checkpoints to resume from")
    seed: int = setting(0, "seed of sampling and initialisation")
    threads: int | None = setting(None, "torch threads (default: every core; under torchrun, the cores shared out)")
    # where and how: a run may resume with other values (RUNTIME_FIELDS)
    device: str = setting("auto", "where to train: auto (a CUDA GPU if torch sees one, else the CPU), cpu, cuda, cuda:N")
    precision: str = setting("auto", "auto (bf16 autocast on a CUDA GPU that supports it, else fp32), fp32 or bf16")
    data_in: str = setting("memory", "where training keeps its tokens: memory (the fastest), or disk (files under "
                           "OUT/tokens read batch by batch: memory grows with the batch, not the dataset)")

    def __post_init__(self):
        if self.seq_len is None:
            self.seq_len = self.context_len * 3 // 2
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("max_episodes", "expert_episodes", "threads") and value is None:
                continue
            if f.name in ("device", "precision", "data_in"):
                continue
            if f.name in ("prev_obs", "final_obs"):
                if not isinstance(value, bool):
                    raise TypeError(f"TrainConfig.{f.name} must be a bool, got {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"TrainConfig.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"TrainConfig.{f.name} must be finite, got {value!r}")
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            check_int(f"TrainConfig.{name}", value, 0 if name in ("warmup", "seed") else 1)
        for name in ("dropout", "attn_dropout", "token_mask_prob", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.weight_decay < 0 or self.grad_clip <= 0:
            raise ValueError(
                f"weight_decay must be >= 0 and grad_clip > 0, got {self.weight_decay!r} and {self.grad_clip!r}"
            )
        if self.seq_len < self.context_len:
            raise ValueError(f"seq_len ({self.seq_len}) must be >= context_len ({self.context_len})")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.data_in not in ("memory", "disk"):
            raise ValueError(f"TrainConfig.data_in must be 'memory' or 'disk', got {self.data_in!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that make the model what it is: all but where and how it trained."""
        return _identity(self.to_dict())

    def model_config(self, env_id: str) -> ADConfig:
        architecture = {name: getattr(self, name) for name in _MODEL_DEFAULTS}
        return ADConfig(**env_shapes(env_id), **architecture)


def env_shapes(env_id: str) -> dict[str, Any]:
    """What the model needs to know of an env: observation components, actions, episode length."""
    env = gym.make(env_id)
    space = env.observation_space
    if isinstance(space, gym.spaces.MultiDiscrete):
        observation = {"obs_nvec": tuple(int(n) for n in space.nvec.reshape(-1))}
    elif isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3:
        observation = {"obs_nvec": (), "image_shape": tuple(int(n) for n in space.shape)}
    else:
        raise TypeError(f"{env_id}: the AD model reads MultiDiscrete or (H, W, C) uint8 image observations, got {space}")
    shapes = {
        **observation,
        "n_actions": int(env.action_space.n),
        "max_episode_steps": int(env.unwrapped.max_steps),
    }
    env.close()
    return shapes


def lr_at(update: int, config: TrainConfig) -> float:
    if update < config.warmup:
        return config.lr * (update + 1) / config.warmup
    progress = (update - config.warmup) / max(1, config.updates - config.warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def sequence_loss(model: ADTransformer, batch: dict[str, torch.Tensor], label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of the target actions; only where ``batch["loss_mask"]`` (B, T) is True, if given."""
    logits = model(batch["obs"], batch["prev_actions"], batch["prev_rewards"], batch["steps"], batch.get("final_obs"),
                   batch.get("positions"), batch.get("allowed"))  # (B, T, A)
    targets = batch["actions"]
    if "loss_mask" in batch:
        logits, targets = logits[batch["loss_mask"]], targets[batch["loss_mask"]]
    return F.cross_entropy(logits.flatten(0, -2), targets.flatten(), label_smoothing=label_smoothing)


def _histories(source: str | os.PathLike | list[str | os.PathLike | History]) -> list[History]:
    """Histories given as objects, or loaded from a folder (or file), or from several: e.g. the
    same tasks collected with different seeds, so each task has several learners' histories."""
    if isinstance(source, (str, os.PathLike)):
        return load_histories(source, compact=True)
    histories = [h for item in source for h in ([item] if isinstance(item, History) else load_histories(item, compact=True))]
    if not histories:
        raise ValueError("no histories given: pass a folder of histories, several folders, or History objects")
    check_one_env(histories, "the histories given")
    return histories


def sequence_sampler(histories: list[History], config: TrainConfig, n_actions: int, generator: torch.Generator) -> SequenceSampler:
    """The training segments that ``config`` selects from ``histories``; a ValueError if there are none
    or if ``config.final_obs`` asks for the views episodes ended on and a history lacks them."""
    sequences = build_sequences(histories, n_actions, config.every_k, config.max_episodes, config.expert_episodes)
    if not config.final_obs:  # a model without final_obs never reads them: do not gather them every batch
        sequences.final_obs = None
    sampler = SequenceSampler(sequences, config.seq_len, generator)
    if config.final_obs and not sampler.has_final_obs:
        lacking = [str(h.path or h.task) for h in histories if h.next_observations is None]
        raise ValueError(
            f"final_obs embeds the view each episode ended on, but {len(lacking)} histories were recorded without "
            f"next_observations (e.g. {lacking[:2]}): collect them again with this ad_gym, or train without final_obs"
        )
    return sampler


def check_training_data(path: str | os.PathLike | list[str | os.PathLike | History], config: TrainConfig) -> None:
    """Raise now the ValueError that `train` would raise on data that yields no training sequence.

    A pipeline calls it right after collection, so that a too-short data slice (say, ED's last
    episodes) fails before the long stages, not after them.
    """
    histories = _histories(path)
    sequence_sampler(histories, config, env_shapes(histories[0].env_id)["n_actions"], torch.Generator())


def train(
    train_path: str | os.PathLike | list[str | os.PathLike | History],
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    val_path: str | os.PathLike | list[str | os.PathLike | History] | None = None,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
    until: int | None = None,
    method: str = IMITATION_METHOD,
    log_dir: str | os.PathLike | None = None,
) -> Path:
    """Train (or resume training) a model that imitates the actions of stored histories; returns
    the path of its checkpoint. ``method`` is the name recorded in the checkpoint (the method
    registry uses it to load the right agent).

    ``train_path`` and ``val_path``: a folder of histories, a list of folders (trained on
    together, e.g. collections of the same tasks with different seeds), or `History` objects.

    ``until`` stops after that many updates in all (a time-boxed run): the checkpoint is saved
    unfinished, and calling `train` again with the same arguments continues from it.

    ``log_dir`` (default: ``out``) receives the training log as it runs: `TrainingLog`.
    """
    config = config or TrainConfig()
    generator = torch.Generator().manual_seed(config.seed)
    if config.data_in == "disk":
        if (Path(out) / CHECKPOINT).exists():  # before the token files there are written again for other settings
            refuse_other_settings(Path(out) / CHECKPOINT, load_checkpoint(Path(out) / CHECKPOINT)[0], config, method)
        sampler, env_id, train_tasks, source = _sampler_on_disk(train_path, Path(out) / "tokens", config, generator)
    else:
        train_histories = _histories(train_path)
        env_id, train_tasks = train_histories[0].env_id, [h.task for h in train_histories]
        source = train_histories[0].metadata.get("source")
        sampler = sequence_sampler(train_histories, config, env_shapes(env_id)["n_actions"], generator)
        del train_histories  # the sampler holds the tokens it needs
    val_histories = _histories(val_path) if val_path is not None else []
    check_disjoint_tasks(train_tasks, [h.task for h in val_histories])
    model_config = config.model_config(env_id)
    val_sampler = None
    if val_histories:
        val_sampler = sequence_sampler(val_histories, config, model_config.n_actions, torch.Generator().manual_seed(config.seed + 1))
    data = {"train_tasks": train_tasks, "val_tasks": [h.task for h in val_histories], "source": source}
    return fit(model_config, sampler, val_sampler, out, config, method=method, data=data, env_id=env_id,
               progress=progress, provenance=provenance, until=until, log_dir=log_dir)


def _sampler_on_disk(train_path, folder: Path, config: TrainConfig, generator: torch.Generator):
    """`data_in="disk"`: the training tokens written to ``folder`` from histories read one at a time
    (reused while the histories and the data settings are unchanged), and a sampler reading them."""
    sources = [train_path] if isinstance(train_path, (str, os.PathLike)) else list(train_path)
    if not sources or any(isinstance(item, History) for item in sources):
        raise ValueError("data_in='disk' reads histories from folders (or files): pass their paths, not History objects")
    files = [file.resolve() for item in sources for file in history_files(item)]
    if not files:
        raise ValueError(f"no history files in {[str(item) for item in sources]}")
    env_id = read_history(files[0]).env_id
    n_actions = env_shapes(env_id)["n_actions"]
    key = {"histories": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files], "n_actions": n_actions,
           **{name: getattr(config, name) for name in ("every_k", "max_episodes", "expert_episodes")}}
    world = distributed.torchrun_world()
    if token_files.stored_key(folder) == key:
        tokens = token_files.TokenFiles(folder)
    elif world.is_main:
        def histories():
            for item in sources:
                yield from iter_histories(item, env_id, compact=True)

        tokens = token_files.write_token_files(histories(), folder, n_actions, config.every_k, config.max_episodes,
                                               config.expert_episodes, key=key)
    else:
        tokens = token_files.wait_for_token_files(folder, key)
    if not config.final_obs:
        tokens.final_obs = None
    elif not tokens.final_obs:
        raise ValueError("final_obs embeds the view each episode ended on, but some of these histories were recorded "
                         "without next_observations: collect them again with this ad_gym, or train without final_obs")
    return (SequenceSampler(tokens, config.seq_len, generator), env_id, tokens.meta["tasks"], tokens.meta["source"])


def check_disjoint(train_histories: list[History], val_histories: list[History]) -> None:
    check_disjoint_tasks([h.task for h in train_histories], [h.task for h in val_histories])


def check_disjoint_tasks(train_tasks: list[dict[str, Any]], val_tasks: list[dict[str, Any]]) -> None:
    overlap = {str(task) for task in val_tasks} & {str(task) for task in train_tasks}
    if overlap:
        raise ValueError(f"validation tasks also appear in the training histories: {sorted(overlap)[:3]}")


def set_threads(threads: int | None, world: distributed.World = distributed.World()) -> None:
    """``threads``, or every core (under torchrun, this machine's cores shared out among its ranks)."""
    per_rank = len(stages.available_cores()) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world.size)))
    torch.set_num_threads(threads or max(1, per_rank))


def fit(
    model_config: ADConfig,
    sampler,
    val_sampler,
    out: str | os.PathLike,
    config: TrainConfig,
    method: str,
    data: dict[str, Any],
    env_id: str,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
    until: int | None = None,
    log_dir: str | os.PathLike | None = None,
) -> Path:
    """The training loop every method shares: batches from ``sampler.sample(batch_size)`` (a dict
    of token tensors and target actions, see `sequence_loss`), AdamW with warm-up and cosine decay,
    a validation loss, checkpoints to resume from. ``data`` describes the training data (tasks,
    source); a rerun on other data or settings is refused, a finished checkpoint returned as is.
    Every ``eval_every`` updates a row goes to the checkpoint's log and to `TrainingLog` in
    ``log_dir`` (default: ``out``)."""
    out = Path(out)
    checkpoint_path = out / CHECKPOINT
    world = distributed.torchrun_world()
    device = distributed.resolve_device(config.device, world)  # before any work: a missing GPU fails now
    share = world.share(config.batch_size)
    amp = distributed.autocast_dtype(config.precision, device)
    if world.is_main:
        remove_orphaned_temps(out)  # left by a run killed mid-save
    set_threads(config.threads, world)
    torch.manual_seed(config.seed)  # the same initial weights on every device and rank
    generator = sampler.generator

    model = ADTransformer(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    meta = {
        "kind": "ad_model",
        "method": method,
        "env_id": env_id,
        "model": model_config.to_dict(),
        "train": config.to_dict(),
        **data,
        "provenance": stamped(provenance),
        "update": 0,
        "finished": False,
        "log": [],
    }
    if checkpoint_path.exists():
        old_meta, payload = load_checkpoint(checkpoint_path)
        refuse_other_settings(checkpoint_path, old_meta, config, method, env_id)
        changed = [key for key in data if as_json(old_meta.get(key)) != as_json(meta[key])]
        if changed:
            raise ValueError(
                f"{checkpoint_path} was trained on other histories ({', '.join(changed)} differ); "
                "resume with the same histories or choose another output folder"
            )
        if old_meta.get("finished"):
            return checkpoint_path  # done already: never overwrite a finished model
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])  # moved to the model's device with it, below
        generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        meta = {**meta, "update": old_meta["update"], "log": old_meta["log"]}

    model.to(device)
    _move_optimizer_state(optimizer, device)
    for each in (sampler, val_sampler):
        _keep_data_on(each, device)
    distributed.start(world, device)
    trained = model if world.size == 1 else torch.nn.parallel.DistributedDataParallel(model)

    def checkpoint(finished: bool) -> None:
        # A diverged model is never saved: the last checkpoint (the state before it) is kept.
        bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise FloatingPointError(
                f"training diverged before update {meta['update']}: non-finite weights in {bad[:3]}; nothing was saved "
                f"over {checkpoint_path} (lower lr, or raise warmup; then train into a new folder)"
            )
        if not world.is_main:
            return
        meta["finished"] = finished
        tensors = {"model": model.state_dict()}  # saved from the CPU (save_checkpoint): loads on any machine
        if not finished:
            tensors |= {"optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                        "torch_rng": torch.get_rng_state()}
        save_checkpoint(checkpoint_path, meta, tensors)

    bar = tqdm(total=config.updates, initial=meta["update"], desc=f"train {out.name}", unit="update",
               disable=not progress or not world.is_main, position=stages.BAR_POSITION)
    # The checkpoint's rows: rows logged after it are dropped. Rank 0 alone writes the log.
    log = TrainingLog(log_dir or out, meta["log"]) if world.is_main else None
    start = last_time = time.perf_counter()
    last_update = meta["update"]
    model.train()
    stop = config.updates if until is None else min(until, config.updates)
    while meta["update"] < stop:
        update = meta["update"]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(update, config)
        batch = _to_device(sampler.sample(config.batch_size, rows=share), device)
        with _autocast(device, amp):
            loss = sequence_loss(trained, batch, config.label_smoothing)
        global_loss = distributed.mean_over_ranks(loss, world)  # every rank stops together on a bad loss
        if not torch.isfinite(global_loss):
            raise FloatingPointError(
                f"training diverged at update {update + 1}: the loss is {global_loss.item()}; nothing is marked finished "
                f"and the last checkpoint in {out}, if any, is kept (lower lr, or raise warmup; then train into a new folder)"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DistributedDataParallel averages the ranks' gradients: the global batch's
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        meta["update"] = update + 1
        postfix = {"loss": f"{global_loss.item():.3f}"}
        if meta["update"] % config.eval_every == 0 or meta["update"] == config.updates:
            now = time.perf_counter()
            entry = {"update": meta["update"], "loss": round(global_loss.item(), 4), "seconds": round(now - start, 1),
                     "lr": lr_at(update, config), "updates_per_s": round((meta["update"] - last_update) / (now - last_time), 3)}
            last_time, last_update = now, meta["update"]
            if val_sampler is not None:
                entry["val_loss"] = round(validation_loss(model, val_sampler, config, device, amp), 4)
                postfix["val"] = f"{entry['val_loss']:.3f}"
            meta["log"].append(entry)
            if log is not None:
                log.add(entry)
        if meta["update"] % config.checkpoint_every == 0 and meta["update"] < config.updates:
            checkpoint(finished=False)
        bar.set_postfix(postfix, refresh=False)
        bar.update()
    bar.close()
    if log is not None:
        log.close()
    checkpoint(finished=meta["update"] >= config.updates)
    distributed.stop(world)
    return checkpoint_path


def refuse_other_settings(checkpoint_path: Path, old_meta: dict[str, Any], config: TrainConfig, method: str,
                          env_id: str | None = None) -> None:
    """A ValueError if the checkpoint in an output folder was trained with other settings (those
    that make the model: `TrainConfig.identity`), by another method, or on another env."""
    if (_identity(old_meta.get("train")) != config.identity() or checkpoint_method(old_meta) != method
            or (env_id is not None and old_meta.get("env_id") != env_id)):
        raise ValueError(
            f"{checkpoint_path} was trained with other settings; resume with the same settings or choose another output folder"
        )


def _identity(train_settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """A checkpoint's training settings without the runtime fields (older checkpoints lack some)."""
    if train_settings is None:
        return None
    return {name: value for name, value in train_settings.items() if name not in RUNTIME_FIELDS}


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0:  # AdamW's step counts stay on the CPU
                state[key] = value.to(device)


def _keep_data_on(sampler, device: torch.device) -> None:
    """Put the sampler's token data on a GPU where it fits (batches are then gathered there);
    where it does not, it stays in host memory and each batch is copied over."""
    if sampler is None or device.type == "cpu" or not hasattr(sampler, "to"):
        return
    try:
        sampler.to(device)
    except torch.cuda.OutOfMemoryError:
        sampler.to(torch.device("cpu"))
        torch.cuda.empty_cache()


def _autocast(device: torch.device, amp: torch.dtype | None):
    return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


class TrainingLog:
    """The training curve, written as training runs: ``train_log.csv`` (one row per logged update:
    update, loss, val_loss, lr, updates_per_s, seconds) and, when the ``tensorboard`` package is
    installed, TensorBoard scalars under ``tensorboard/``; ``training.png`` (the losses against
    updates) when training stops. The CSV is rewritten whole and atomically from the rows so far,
    so a killed run leaves a readable log and a resumed one continues the checkpoint's rows."""

    COLUMNS = ("update", "loss", "val_loss", "lr", "updates_per_s", "seconds")

    def __init__(self, folder: str | os.PathLike, rows: list[dict[str, Any]]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows = list(rows)
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package
        except ImportError:
            SummaryWriter = None
        if SummaryWriter is not None:
            self.writer = SummaryWriter(str(self.folder / "tensorboard"))
        self._write_files()

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.writer is not None:
            for name in self.COLUMNS[1:]:
                if row.get(name) is not None:
                    self.writer.add_scalar(f"train/{name}", row[name], row["update"])
        self._write_files()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.rows:
            atomic_write(self.folder / "training.png", lambda f: plot_training(self.rows, f))

    def _write_files(self) -> None:
        lines = [",".join(self.COLUMNS)] + [
            ",".join("" if row.get(c) is None else str(row[c]) for c in self.COLUMNS) for row in self.rows
        ]
        atomic_write(self.folder / "train_log.csv", lambda f: f.write(("\n".join(lines) + "\n").encode()))


def plot_training(rows: list[dict[str, Any]], path) -> None:
    """Training and validation loss against updates, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    updates = [row["update"] for row in rows]
    ax.plot(updates, [row["loss"] for row in rows], label="training loss (last batch)")
    if any(row.get("val_loss") is not None for row in rows):
        ax.plot(updates, [row.get("val_loss") for row in rows], label="validation loss")
    ax.set_xlabel("update")
    ax.set_ylabel("cross-entropy")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


@torch.no_grad()
def validation_loss(model: ADTransformer, sampler: SequenceSampler, config: TrainConfig,
                    device: torch.device = torch.device("cpu"), amp: torch.dtype | None = None) -> float:
    """The mean loss over ``val_batches`` fixed batches (every rank computes the same one)."""
    model.eval()
    sampler.generator.manual_seed(config.seed + 1)  # the same validation batches every time
    losses = []
    for _ in range(config.val_batches):
        with _autocast(device, amp):
            losses.append(sequence_loss(model, _to_device(sampler.sample(config.batch_size), device)).item())
    model.train()
    return float(np.mean(losses))
