"""Checkpoints: config + class map + weights (+ extra), written atomically, reloaded exactly."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.classmap import ClassMap
from core.io.atomic import atomic_path
from core.network.config import GFNConfig
from core.network.factory import build_model

log = logging.getLogger(__name__)

FORMAT = "gfn-autolabel/checkpoint-1"


@dataclass
class Checkpoint:
    """A reloaded checkpoint; ``model`` is in eval mode."""

    model: nn.Module
    config: GFNConfig
    classmap: ClassMap
    extra: dict[str, Any] = field(default_factory=dict)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def _synced_config(model: nn.Module, config: GFNConfig) -> GFNConfig:
    """The config with the GF module's current ``r`` / ``eps`` (they may be set by a grid search)."""
    gf = getattr(model, "gf", None)
    if gf is None:
        return config
    r, eps = int(gf.r), float(gf.eps)
    if (r, eps) != (config.gf_radius, config.gf_eps):
        log.info("checkpoint stores the model's guided filter r=%d eps=%g", r, eps)
        config = dataclasses.replace(config, gf_radius=r, gf_eps=eps)
    return config


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    config: GFNConfig,
    classmap: ClassMap,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights with ``config`` and ``classmap`` to ``path`` atomically.

    ``extra`` must hold plain data (numbers, strings, lists, dicts). Overwrites ``path``.
    """
    model = _unwrap(model)
    if config.num_classes != classmap.num_classes:
        raise ValueError(
            f"config.num_classes={config.num_classes} but the class map has {classmap.num_classes} "
            f"classes {list(classmap.names)}"
        )
    config = _synced_config(model, config)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "config": config.to_dict(),
        "classmap": list(classmap.names),
        "state_dict": state,
        "extra": dict(extra or {}),
    }
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model of a checkpoint written by :func:`save_checkpoint` (no ImageNet download)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable gfn-autolabel checkpoint ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gfn-autolabel checkpoint (expected format {FORMAT!r})")
    config = GFNConfig.from_dict(payload["config"])
    classmap = ClassMap(tuple(payload["classmap"]))
    model = build_model(dataclasses.replace(config, pretrained=False))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return Checkpoint(model=model, config=config, classmap=classmap, extra=dict(payload.get("extra") or {}))
