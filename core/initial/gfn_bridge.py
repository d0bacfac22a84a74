"""Train a GFN on pseudo-labels and predict with it (routes ``otsu`` and ``transfer``).

Thin glue over ``core.network`` and ``core.training`` (their contracts in ARCHITECTURE.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from core.initial.config import InitConfig
from core.progress import Progress

log = logging.getLogger(__name__)


def _train_config(cfg: InitConfig):
    from core.training.trainer import TrainConfig

    opts: dict[str, Any] = {"seed": cfg.seed, "max_side": cfg.work_size}
    if cfg.num_threads is not None:
        opts["num_threads"] = cfg.num_threads
    opts.update(cfg.train)
    return TrainConfig.from_dict(opts)


def gfn_config(cfg: InitConfig, num_classes: int):
    from core.network.config import GFNConfig

    return GFNConfig.from_dict({**dict(cfg.gfn), "num_classes": num_classes})


def train_gfn(
    pairs: Sequence[tuple[Any, np.ndarray]], num_classes: int, cfg: InitConfig, *, progress: Progress | None = None
):
    """Build and train a GFN on ``(image path | array, (H, W) uint8 mask)`` pairs (255 = ignore)."""
    try:
        from core.network.factory import build_model
        from core.training.trainer import train
    except ImportError as exc:
        raise ImportError(f"this initial route trains a GFN, but the network/training code is missing: {exc}") from exc
    if not pairs:
        raise ValueError("no training pairs for the GFN")
    gcfg = gfn_config(cfg, num_classes)
    model = build_model(gcfg)
    log.info("training a %d-class GFN on %d pseudo-labelled images", num_classes, len(pairs))
    pairs = list(pairs)
    if len(pairs) < cfg.min_train_samples:
        pairs = pairs * -(-cfg.min_train_samples // len(pairs))  # repeat: enough iterations per epoch
    train(model, pairs, _train_config(cfg), progress=progress, gfn_config=gcfg)
    return model


def predict_gfn(model, images: Iterable[Any], cfg: InitConfig, *, progress: Progress | None = None) -> Iterator:
    """``Prediction(mask, probs)`` per image, at each image's full size."""
    from core.training.predict import predict

    return predict(model, images, tta_flip=cfg.predict_flip, max_side=cfg.work_size, progress=progress)
