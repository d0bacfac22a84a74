"""One way to train a round's model: the engine's refinement rounds and the Label Studio backend both
call :func:`train_round_model`, so a recipe, a warm start or a checkpoint field cannot differ between
them.

The checkpoint it writes carries typed records (``core.network.checkpoint``): ``InferenceSettings``
(how the round ran the model: size, flip, post-processing, consistency), which
``core.refine.apply.Labeller`` repeats, and ``TrainingRecord`` (origin, round, recipe, counts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from core.classmap import ClassMap
from core.network.checkpoint import InferenceSettings, TrainingRecord
from core.progress import Progress
from core.refine.config import RunConfig, working_sizes

log = logging.getLogger(__name__)

ORIGINS = ("run", "labelstudio")


@dataclass(frozen=True)
class RoundModel:
    """A trained round model, in eval mode, and what its training did."""

    model: nn.Module
    checkpoint: Path
    training: TrainingRecord
    losses: tuple[float, ...]
    """Mean loss of each epoch."""


def inference_settings(config: RunConfig) -> InferenceSettings:
    """How ``config``'s rounds run their model on images (stored with every round's checkpoint)."""
    return InferenceSettings(
        max_side=working_sizes(config).predict,
        tta_flip=config.post.tta_flip,
        postprocess=config.post.chain,
        consistency=config.post.consistency,
        post_params=config.post.params.to_dict(),
    )


def crop_size(config: RunConfig, pairs: Sequence[tuple[Any, np.ndarray]] | None = None) -> int:
    """The training crop: ``config.train.crop_size``, but no larger than the longest side the network is
    shown (``max_side``: ``working_sizes``, and the largest training image's longer side, from ``pairs``'
    labels).

    A crop larger than the images is mostly padding: ignored by the loss, but it shifts the head's
    BatchNorm statistics, and the Label Studio backend's network trained on 192-pixel crops of
    96-pixel images predicted background only (0.874 mean IoU with the crop capped)."""
    crop = working_sizes(config).crop
    if pairs:
        crop = min(crop, max(max(np.asarray(label).shape[:2]) for _, label in pairs))
    return max(int(crop), 16)


def train_config(config: RunConfig, index: int, pairs: Sequence[tuple[Any, np.ndarray]] | None = None):
    """The round's ``TrainConfig``; with ``pairs`` the crop is capped at the largest training image."""
    return config.train.train_config(
        seed=config.seed + index,
        max_side=working_sizes(config).train,
        num_threads=config.num_threads,
        crop_size=crop_size(config, pairs),
    )


def _warm_start(model: nn.Module, path: Path | None, classmap: ClassMap, backbone: str) -> bool:
    """Load ``path``'s weights into ``model`` when its classes and backbone match; says why not otherwise."""
    from core.network.checkpoint import load_checkpoint

    if path is None or not Path(path).is_file():
        return False
    prev = load_checkpoint(path)
    if prev.classmap != classmap or prev.config.backbone != backbone:
        log.info(
            "not warm-starting from %s: classes %s / backbone %s, need %s / %s",
            path,
            list(prev.classmap.names),
            prev.config.backbone,
            list(classmap.names),
            backbone,
        )
        return False
    model.load_state_dict(prev.model.state_dict())
    log.info("warm start from %s", path)
    return True


def train_round_model(
    pairs: Sequence[tuple[Any, np.ndarray]],
    classmap: ClassMap,
    config: RunConfig,
    *,
    round_index: int,
    out_path: Path,
    warm_start: Path | None = None,
    origin: str = "run",
    n_human: int = 0,
    progress: Progress | None = None,
) -> RoundModel:
    """Build the round's GFN (``config.network``), warm-start it from ``warm_start`` when that checkpoint
    exists with the same classes and backbone, train it on ``pairs`` (image path or ``(H, W, 3)``
    array, ``(H, W)`` uint8 class-index label with 255 = ignore) with ``config.train``, and save it to
    ``out_path`` with its ``InferenceSettings`` and ``TrainingRecord``.

    ``n_human`` of the pairs carry human masks (the rest pseudo-labels). Raises ``ValueError`` on no
    pairs or an unknown ``origin``; ``KeyboardInterrupt`` when the training was interrupted (the
    round must not finish).
    """
    import torch

    from core import __version__
    from core.network.checkpoint import save_checkpoint
    from core.network.factory import build_model
    from core.training.trainer import train

    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {list(ORIGINS)}, got {origin!r}")
    pairs = list(pairs)
    if not pairs:
        raise ValueError(f"round {round_index}: nothing to train on (no human masks and no pseudo-labels)")
    gcfg = config.network.gfn_config(classmap.num_classes)
    torch.manual_seed(config.seed + round_index)
    model = build_model(gcfg)
    _warm_start(model, warm_start, classmap, gcfg.backbone)
    tcfg = train_config(config, round_index, pairs)
    t0 = time.perf_counter()
    result = train(model, pairs, tcfg, progress=progress)
    if result.stopped_reason == "interrupted":  # the trainer swallows Ctrl-C
        raise KeyboardInterrupt(f"training of round {round_index} interrupted")
    model.eval()
    record = TrainingRecord(
        origin=origin,
        round=round_index,
        engine=__version__,
        run_config=config.to_dict(),
        train_config=tcfg.to_dict(),
        n_human=n_human,
        n_pseudo=len(pairs) - n_human,
        epochs=result.epochs_done,
        steps=result.iterations,
        seconds=round(time.perf_counter() - t0, 1),
    )
    save_checkpoint(out_path, model, gcfg, classmap, inference=inference_settings(config), training=record)
    return RoundModel(
        model=model,
        checkpoint=Path(out_path),
        training=record,
        losses=tuple(round(float(v), 4) for v in result.losses),
    )
