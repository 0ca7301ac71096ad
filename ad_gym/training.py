"""Train the AD transformer on stored learning histories (plain action imitation).

    config = TrainConfig(updates=3000, every_k=4)
    train("histories/DarkRoom-v0-train", "runs/ad", config, val_path="histories/DarkRoom-v0-test")

The loop: AdamW, linear warm-up then cosine decay, gradient clipping, cross-entropy on the next
action at every token (with optional label smoothing), a validation loss on histories of
held-out tasks, and a checkpoint every ``checkpoint_every`` updates from which a rerun resumes.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ad_gym import stages
from ad_gym.atomic import atomic_write, remove_orphaned_temps
from ad_gym.checkpoints import CHECKPOINT, IMITATION_METHOD, as_json, checkpoint_method, load_checkpoint, save_checkpoint
from ad_gym.data.histories import History, check_one_env, load_histories
from ad_gym.data.windows import SequenceSampler, build_sequences
from ad_gym.envs.checks import check_int
from ad_gym.models.transformer import ADConfig, ADTransformer
from ad_gym.settings import setting
from ad_gym.version import __version__

# The architecture fields of ADConfig (what the env fixes, such as image_shape, comes from env_shapes).
_MODEL_DEFAULTS = {f.name: f.default for f in fields(ADConfig) if f.default is not MISSING and f.name != "image_shape"}


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
    threads: int | None = setting(None, "torch threads (default: every core)")

    def __post_init__(self):
        if self.seq_len is None:
            self.seq_len = self.context_len * 3 // 2
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("max_episodes", "expert_episodes", "threads") and value is None:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
    train_histories = _histories(train_path)
    val_histories = _histories(val_path) if val_path is not None else []
    check_disjoint(train_histories, val_histories)
    model_config = config.model_config(train_histories[0].env_id)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = sequence_sampler(train_histories, config, model_config.n_actions, generator)
    val_sampler = None
    if val_histories:
        val_sampler = sequence_sampler(val_histories, config, model_config.n_actions, torch.Generator().manual_seed(config.seed + 1))
    data = {"train_tasks": [h.task for h in train_histories], "val_tasks": [h.task for h in val_histories],
            "source": train_histories[0].metadata.get("source")}
    return fit(model_config, sampler, val_sampler, out, config, method=method, data=data, env_id=train_histories[0].env_id,
               progress=progress, provenance=provenance, until=until, log_dir=log_dir)


def check_disjoint(train_histories: list[History], val_histories: list[History]) -> None:
    overlap = {str(h.task) for h in val_histories} & {str(h.task) for h in train_histories}
    if overlap:
        raise ValueError(f"validation tasks also appear in the training histories: {sorted(overlap)[:3]}")


def set_threads(threads: int | None) -> None:
    torch.set_num_threads(threads or len(stages.available_cores()))


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
    remove_orphaned_temps(out)  # left by a run killed mid-save
    set_threads(config.threads)
    torch.manual_seed(config.seed)
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
        "provenance": {"ad_gym_version": __version__, **(provenance or {})},
        "update": 0,
        "finished": False,
        "log": [],
    }
    if checkpoint_path.exists():
        old_meta, payload = load_checkpoint(checkpoint_path)
        if old_meta.get("train") != meta["train"] or old_meta.get("env_id") != env_id or checkpoint_method(old_meta) != method:
            raise ValueError(
                f"{checkpoint_path} was trained with other settings; resume with the same settings or choose another output folder"
            )
        changed = [key for key in data if as_json(old_meta.get(key)) != as_json(meta[key])]
        if changed:
            raise ValueError(
                f"{checkpoint_path} was trained on other histories ({', '.join(changed)} differ); "
                "resume with the same histories or choose another output folder"
            )
        if old_meta.get("finished"):
            return checkpoint_path  # done already: never overwrite a finished model
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        meta = {**meta, "update": old_meta["update"], "log": old_meta["log"]}

    def checkpoint(finished: bool) -> None:
        # A diverged model is never saved: the last checkpoint (the state before it) is kept.
        bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise FloatingPointError(
                f"training diverged before update {meta['update']}: non-finite weights in {bad[:3]}; nothing was saved "
                f"over {checkpoint_path} (lower lr, or raise warmup; then train into a new folder)"
            )
        meta["finished"] = finished
        tensors = {"model": model.state_dict()}
        if not finished:
            tensors |= {"optimizer": optimizer.state_dict(), "generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
        save_checkpoint(checkpoint_path, meta, tensors)

    bar = tqdm(total=config.updates, initial=meta["update"], desc=f"train {out.name}", unit="update", disable=not progress,
               position=stages.BAR_POSITION)
    log = TrainingLog(log_dir or out, meta["log"])  # the checkpoint's rows: rows logged after it are dropped
    start = last_time = time.perf_counter()
    last_update = meta["update"]
    model.train()
    stop = config.updates if until is None else min(until, config.updates)
    while meta["update"] < stop:
        update = meta["update"]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(update, config)
        loss = sequence_loss(model, sampler.sample(config.batch_size), config.label_smoothing)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training diverged at update {update + 1}: the loss is {loss.item()}; nothing is marked finished and "
                f"the last checkpoint in {out}, if any, is kept (lower lr, or raise warmup; then train into a new folder)"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        meta["update"] = update + 1
        postfix = {"loss": f"{loss.item():.3f}"}
        if meta["update"] % config.eval_every == 0 or meta["update"] == config.updates:
            now = time.perf_counter()
            entry = {"update": meta["update"], "loss": round(loss.item(), 4), "seconds": round(now - start, 1),
                     "lr": lr_at(update, config), "updates_per_s": round((meta["update"] - last_update) / (now - last_time), 3)}
            last_time, last_update = now, meta["update"]
            if val_sampler is not None:
                entry["val_loss"] = round(validation_loss(model, val_sampler, config), 4)
                postfix["val"] = f"{entry['val_loss']:.3f}"
            meta["log"].append(entry)
            log.add(entry)
        if meta["update"] % config.checkpoint_every == 0 and meta["update"] < config.updates:
            checkpoint(finished=False)
        bar.set_postfix(postfix, refresh=False)
        bar.update()
    bar.close()
    log.close()
    checkpoint(finished=meta["update"] >= config.updates)
    return checkpoint_path


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
def validation_loss(model: ADTransformer, sampler: SequenceSampler, config: TrainConfig) -> float:
    model.eval()
    sampler.generator.manual_seed(config.seed + 1)  # the same validation batches every time
    losses = [sequence_loss(model, sampler.sample(config.batch_size)).item() for _ in range(config.val_batches)]
    model.train()
    return float(np.mean(losses))
