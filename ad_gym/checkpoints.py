"""Checkpoint files: model weights plus JSON-readable metadata, loaded without unpickling code.

A checkpoint is a ``torch.save`` of a dict holding only tensors, numbers and strings; it is read
with ``torch.load(weights_only=True)``, which refuses anything else. ``meta`` is a JSON string:
the model config, the env id, the task split, and how the model was trained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ad_gym.atomic import atomic_write
from ad_gym.version import __version__

FORMAT = "ad_gym.checkpoint"
CHECKPOINT = "checkpoint.pt"  # a training folder's checkpoint; what save/load use for a folder
FORMAT_VERSION = 1
# The method of a checkpoint that does not name one: imitation of the histories it was trained on,
# which is Algorithm Distillation (every checkpoint made before methods were recorded is AD's).
IMITATION_METHOD = "AD"
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"  # models shipped with the package, by name


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or not an ad-gym checkpoint."""


def save_checkpoint(path: str | os.PathLike, meta: dict[str, Any], tensors: dict[str, Any]) -> Path:
    """Write atomically: a temporary file in the same folder, renamed into place. Every tensor is
    saved from the CPU, so a model trained on a GPU loads on any machine."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": json.dumps(meta, sort_keys=True),
               **on_cpu(tensors)}
    return atomic_write(path, lambda f: torch.save(payload, f))


def on_cpu(state: Any) -> Any:
    """``state`` (tensors in dicts, lists and tuples) with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: on_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(on_cpu(value) for value in state)
    return state


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(meta, payload)``; raises `CheckpointError` with the reason if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {str(path)!r}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise CheckpointError(
            f"{path} is not a loadable ad-gym checkpoint: it is corrupted, truncated, or holds objects "
            f"other than tensors and plain values ({type(exc).__name__}: {(str(exc).splitlines() or ['empty file?'])[0][:200]})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an ad-gym checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {payload.get('format_version')!r}; expected {FORMAT_VERSION}")
    try:
        meta = json.loads(payload["meta"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has no readable metadata") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is a JSON {type(meta).__name__}, expected an object")
    return meta, payload


def refuse_other_env(path, meta: dict[str, Any], env_id: str | None = None, env=None) -> None:
    """A ValueError if ``env_id`` or ``env`` (its spec's id) names another env than the checkpoint's:
    same spaces do not make the same task family (Dark Room, Key-to-Door), an env's id decides."""
    from ad_gym.envs.tasks import canonical_env_id

    spec = getattr(env, "spec", None)
    for requested in (env_id, spec.id if spec is not None else None):
        if requested is not None and canonical_env_id(requested) != meta.get("env_id"):
            raise ValueError(f"{path} holds a model for {meta.get('env_id')}, not {canonical_env_id(requested)}")


def checkpoint_method(meta: dict[str, Any]) -> str:
    """The method that trained a checkpoint (`ad_gym.methods`); checkpoints from before methods
    were recorded are all Algorithm Distillation's."""
    return meta.get("method", IMITATION_METHOD)


def stamped(provenance: dict[str, Any] | None) -> dict[str, Any]:
    """A model's provenance as its checkpoint records it: the ad_gym version that trained it first."""
    return {"ad_gym_version": __version__, **(provenance or {})}


def as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON metadata (tuples become lists), for comparing with it."""
    return json.loads(json.dumps(value))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, a training folder holding one, or the name of a shipped model."""
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / CHECKPOINT
    if candidate.is_file():
        return candidate
    shipped = PRETRAINED_DIR / f"{path}.pt"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt")) if PRETRAINED_DIR.is_dir() else []
    raise CheckpointError(f"no checkpoint at {str(path)!r}; shipped pretrained models: {names}")
