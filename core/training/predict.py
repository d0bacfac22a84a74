"""Streaming prediction: class-index masks and per-pixel probabilities at each image's own size."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.network.preprocess import to_input
from core.progress import Progress
from core.training.data import ImageLike, limit_side, load_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """``mask (H, W) uint8`` class indices (argmax) and ``probs (K, H, W) float32`` (sum 1 over K)."""

    mask: np.ndarray
    probs: np.ndarray


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.inference_mode()
def _probs(model: nn.Module, images: list[np.ndarray], tta_flip: bool) -> torch.Tensor:
    """Softmax probabilities ``(B, K, h, w)`` for same-size images ``(h, w, 3)``."""
    x = to_input(np.stack(images)).to(_device(model))
    probs = torch.softmax(model(x), dim=1)
    if tta_flip:
        probs = 0.5 * (probs + torch.softmax(model(x.flip(-1)), dim=1).flip(-1))
    return probs.float().cpu()


def _finish(probs: torch.Tensor, size: tuple[int, int]) -> Prediction:
    """Upsample ``(K, h, w)`` probabilities to ``size`` and take the argmax."""
    if tuple(probs.shape[-2:]) != size:
        probs = F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0]
    p = probs.numpy()
    return Prediction(mask=p.argmax(0).astype(np.uint8), probs=np.ascontiguousarray(p, dtype=np.float32))


def predict(
    model: nn.Module,
    images: Iterable[ImageLike],
    *,
    batch_size: int = 4,
    tta_flip: bool = False,
    max_side: int | None = None,
    progress: Progress | None = None,
) -> Iterator[Prediction]:
    """Predict each image in turn (a generator; at most one batch of images is held in memory).

    Args:
        model: ``(N, 3, H, W) -> (N, K, H, W)`` logits (a GFN). Put in eval mode while iterating.
        images: paths or ``(H, W, 3) uint8`` RGB arrays.
        batch_size: consecutive images of the same (resized) size are batched together; a
            prediction never depends on the other images of its batch.
        tta_flip: average the probabilities with those of the horizontally flipped image.
        max_side: run the network on a copy downscaled to this longer side; probabilities are
            upsampled back to the input size.
        progress: ``progress("predict", done, total)`` (total 0 when ``images`` has no length).

    Yields:
        One :class:`Prediction` per image, in order, at the image's original size.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if max_side is not None and max_side < 16:
        raise ValueError(f"max_side must be >= 16 or None, got {max_side}")
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    total = len(images) if hasattr(images, "__len__") else 0  # type: ignore[arg-type]
    was_training = net.training
    net.eval()
    done = 0
    batch: list[np.ndarray] = []
    sizes: list[tuple[int, int]] = []

    def flush() -> Iterator[Prediction]:
        nonlocal done
        probs = _probs(net, batch, tta_flip)
        for p, size in zip(probs, sizes):
            done += 1
            yield _finish(p, size)
            if progress is not None:
                progress("predict", done, total)
        batch.clear()
        sizes.clear()

    try:
        for i, src in enumerate(images):
            image = load_image(src, i)
            small = limit_side(image, max_side)
            if batch and (small.shape != batch[0].shape or len(batch) >= batch_size):
                yield from flush()
            batch.append(small)
            sizes.append(image.shape[:2])
        if batch:
            yield from flush()
    finally:
        net.train(was_training)
