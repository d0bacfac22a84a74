"""Checkpoints: config + class map + weights, how the model is applied (``InferenceSettings``) and where
it came from (``TrainingRecord``), written atomically, reloaded exactly.

Format 2 stores the two typed records; format 1 (before them) kept the same facts as loose keys of
``extra``, which :func:`load_checkpoint` still reads into the typed records."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.classmap import ClassMap
from core.config import check_known_fields
from core.io.atomic import atomic_path
from core.network.config import GFNConfig
from core.network.factory import build_model

log = logging.getLogger(__name__)

FORMAT = "gfn-autolabel/checkpoint-2"
FORMATS = ("gfn-autolabel/checkpoint-1", FORMAT)
"""Formats :func:`load_checkpoint` reads (1: the settings as loose ``extra`` keys)."""


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """How the model was run when its round labelled images, so that applying it later repeats it.

    Attributes:
        max_side: the network sees each image downscaled to this longer side (None = full size).
        tta_flip: probabilities averaged with those of the mirrored image.
        postprocess: the post-processing chain (``core.refine.postchain``), e.g. ``"crf+grabcut"``.
        consistency: category consistency (``core.refine.filters.consistent_probs``).
        post_params: the chain's parameters (``core.postprocess.refine.PostprocessConfig`` fields).
    """

    max_side: int | None = 256
    tta_flip: bool = True
    postprocess: str = "crf+grabcut"
    consistency: str = "objectness"
    post_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InferenceSettings:
        check_known_fields(cls, data)
        return cls(**dict(data))


@dataclass(frozen=True, kw_only=True)
class TrainingRecord:
    """Where a checkpoint's weights came from.

    Attributes:
        origin: ``"run"`` (a refinement round), ``"labelstudio"`` (the backend's training),
            ``"train"`` (the ``train`` command) or ``"source"`` (a transfer route's source network).
        round: the refinement round (0 when not a round).
        engine: ``core.__version__`` of the code that trained it.
        run_config: the ``RunConfig`` (as a dict) of the run or the backend's recipe, if any.
        train_config: the ``TrainConfig`` (as a dict) it was trained with.
        n_human / n_pseudo: training pairs with human masks / with pseudo-labels.
        epochs, steps, seconds: what the training did.
        loss: the mean training loss of the last epoch (None when not recorded).
    """

    origin: str
    round: int = 0
    engine: str = ""
    run_config: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    n_human: int = 0
    n_pseudo: int = 0
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0
    loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRecord:
        check_known_fields(cls, data)
        return cls(**dict(data))


_OLD_INFERENCE_KEYS = ("max_side", "tta_flip", "postprocess", "consistency", "post_params")


@dataclass
class Checkpoint:
    """A reloaded checkpoint; ``model`` is in eval mode. ``inference`` / ``training`` are ``None`` for
    a checkpoint that never had them (e.g. written by ``train`` before format 2)."""

    model: nn.Module
    config: GFNConfig
    classmap: ClassMap
    extra: dict[str, Any] = field(default_factory=dict)
    inference: InferenceSettings | None = None
    training: TrainingRecord | None = None


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
    *,
    inference: InferenceSettings | None = None,
    training: TrainingRecord | None = None,
) -> Path:
    """Write ``model``'s weights with ``config``, ``classmap`` and the typed records to ``path``
    atomically. ``extra`` (free-form notes, e.g. a benchmark's row) must hold plain data. Overwrites
    ``path``.
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
        "inference": inference.to_dict() if inference is not None else None,
        "training": training.to_dict() if training is not None else None,
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
    if not isinstance(payload, dict) or payload.get("format") not in FORMATS:
        raise ValueError(f"{path}: not a gfn-autolabel checkpoint (expected format {FORMAT!r})")
    config = GFNConfig.from_dict(payload["config"])
    classmap = ClassMap(tuple(payload["classmap"]))
    model = build_model(dataclasses.replace(config, pretrained=False))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    extra = dict(payload.get("extra") or {})
    inference, training = payload.get("inference"), payload.get("training")
    try:
        if payload["format"] != FORMAT:  # format 1: the same facts as loose extra keys
            inference, training = _from_format_1(extra)
        return Checkpoint(
            model=model,
            config=config,
            classmap=classmap,
            extra=extra,
            inference=InferenceSettings.from_dict(inference) if inference is not None else None,
            training=TrainingRecord.from_dict(training) if training is not None else None,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable checkpoint settings ({exc})") from None


def _from_format_1(extra: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The typed records of a format-1 checkpoint, from its loose ``extra`` keys (None if absent)."""
    inference = {k: extra[k] for k in _OLD_INFERENCE_KEYS if k in extra} or None
    if "round" in extra or "source" in extra:
        training: dict[str, Any] | None = {
            "origin": "labelstudio" if extra.get("source") == "labelstudio" else "run",
            "round": int(extra.get("round", 0)),
            "engine": str(extra.get("engine", "")),
            "run_config": dict(extra.get("run_config") or {}),
            "n_human": int(extra.get("n_human", 0)),
            "n_pseudo": int(extra.get("n_pseudo", 0)),
        }
    elif "train_config" in extra:
        training = {
            "origin": "train",
            "train_config": dict(extra["train_config"]),
            "epochs": int(extra.get("epoch", 0)),
            "steps": int(extra.get("steps", 0)),
            "seconds": float(extra.get("seconds", 0.0)),
        }
    else:
        training = None
    return inference, training
