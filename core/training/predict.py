"""Streaming prediction: class-index masks and per-pixel probabilities at each image's own size.

Every prediction of the product goes through :func:`predict`. By default the network runs on ONNX
Runtime (:mod:`core.inference`: exported once per set of weights, torch when the export fails),
while a reader thread decodes and downscales the next images.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.inference.pipeline import read_ahead
from core.inference.runtime import RUNTIMES, FallbackRunner, Runner, TorchRunner, runner_for
from core.inference.runtime import _device as _device  # (core.training.evaluate uses it)
from core.progress import Progress
from core.training.data import ImageLike, limit_side, load_image

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    """``mask (H, W) uint8`` class indices (argmax) and ``probs (K, H, W) float32`` (sum 1 over K)."""

    mask: np.ndarray
    probs: np.ndarray


@dataclass(frozen=True)
class _Input:
    """One image as the network sees it: ``small (h, w, 3) uint8`` and the original ``size (H, W)``."""

    small: np.ndarray
    size: tuple[int, int]


def _prepare(src: ImageLike, index: int, max_side: int | None) -> _Input:
    """Decode ``src`` and downscale it to ``max_side`` (runs in the reader thread)."""
    image = load_image(src, index)
    return _Input(small=limit_side(image, max_side), size=(image.shape[0], image.shape[1]))


def _probs(runner: Runner, images: list[np.ndarray], tta_flip: bool) -> np.ndarray:
    """Softmax probabilities ``(B, K, h, w)`` for same-size images ``(h, w, 3) uint8``.

    With ``tta_flip`` the mirrored images run in the same batch and their flipped-back
    probabilities are averaged in.
    """
    x = images[0][None] if len(images) == 1 else np.stack(images)
    if tta_flip:
        x = np.concatenate([x, x[:, :, ::-1]])
    probs = runner(x)
    if tta_flip:
        b = len(images)
        probs = 0.5 * (probs[:b] + probs[b:, :, :, ::-1])
    return probs


def _finish(probs: np.ndarray, size: tuple[int, int]) -> Prediction:
    """Upsample ``(K, h, w)`` probabilities to ``size`` (bilinear, half-pixel centres) and take the argmax."""
    if tuple(probs.shape[-2:]) != size:
        t = torch.from_numpy(np.ascontiguousarray(probs))[None]
        probs = F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0].numpy()
    p = np.ascontiguousarray(probs, dtype=np.float32)
    return Prediction(mask=_argmax(p), probs=p)


def _argmax(p: np.ndarray) -> np.ndarray:
    """``p.argmax(0).astype(uint8)`` for ``(K, H, W)``, ties to the lower index like ``argmax``, but one
    pass per class instead of a strided reduction over the first axis (about 30x faster for K = 2)."""
    mask = np.zeros(p.shape[1:], np.uint8)
    best = p[0].copy()
    for k in range(1, p.shape[0]):
        better = p[k] > best
        mask[better] = k
        np.maximum(best, p[k], out=best)
    return mask


def predict(
    model: nn.Module | None,
    images: Iterable[ImageLike],
    *,
    batch_size: int = 4,
    tta_flip: bool = False,
    max_side: int | None = None,
    progress: Progress | None = None,
    runtime: str = "onnx",
    runner: Runner | None = None,
) -> Iterator[Prediction]:
    """Predict each image in turn (a generator; at most a few images are held in memory).

    Args:
        model: ``(N, 3, H, W) -> (N, K, H, W)`` logits (a GFN). Put in eval mode while iterating.
        images: paths or ``(H, W, 3) uint8`` RGB arrays. A reader thread decodes them ahead of the
            network (at most ``batch_size + READ_AHEAD + 2`` taken beyond those yielded), so the
            iterable is consumed in that thread.
        batch_size: consecutive images of the same (resized) size are batched together; a
            prediction never depends on the other images of its batch.
        tta_flip: average the probabilities with those of the horizontally flipped image.
        max_side: run the network on a copy downscaled to this longer side; probabilities are
            upsampled back to the input size.
        progress: ``progress("predict", done, total)`` (total 0 when ``images`` has no length).
        runtime: ``"onnx"`` (default): ONNX Runtime on an export of the model's current weights,
            cached while they stay the same (torch, with a WARNING, when the export fails, and for a
            batch ONNX Runtime fails on: ``core.inference.runtime.FallbackRunner``);
            ``"torch"``: the model itself.
        runner: run the network with this instead of ``runtime``'s runner of ``model`` (e.g. a
            session loaded from :mod:`core.inference.cache`); ``model`` may then be ``None``.

    Yields:
        One :class:`Prediction` per image, in order, at the image's original size.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if max_side is not None and max_side < 16:
        raise ValueError(f"max_side must be >= 16 or None, got {max_side}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    if model is None and runner is None:
        raise ValueError("predict needs a model or a runner")
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    total = len(images) if hasattr(images, "__len__") else 0  # type: ignore[arg-type]
    return _predict(net, images, batch_size, tta_flip, max_side, progress, runtime, total, runner)


def _predict(
    net: nn.Module | None,
    images: Iterable[ImageLike],
    batch_size: int,
    tta_flip: bool,
    max_side: int | None,
    progress: Progress | None,
    runtime: str,
    total: int,
    runner: Runner | None,
) -> Iterator[Prediction]:
    was_training = net.training if net is not None else False
    if net is not None:
        net.eval()
    done = 0
    batch: list[_Input] = []

    def flush() -> Iterator[Prediction]:
        nonlocal done, runner
        if runner is None:  # the export waits for the first batch: nothing to do for no images
            assert net is not None  # (checked by predict)
            runner = runner_for(net, runtime)
            if not isinstance(runner, TorchRunner):
                runner = FallbackRunner(runner, functools.partial(TorchRunner, net))
        probs = _probs(runner, [b.small for b in batch], tta_flip)
        sizes = [b.size for b in batch]
        batch.clear()
        for p, size in zip(probs, sizes):
            done += 1
            yield _finish(p, size)
            if progress is not None:
                progress("predict", done, total)

    reader = read_ahead(images, lambda src, i: _prepare(src, i, max_side))
    try:
        for item in reader:
            if batch and (item.small.shape != batch[0].small.shape or len(batch) >= batch_size):
                yield from flush()
            batch.append(item)
        if batch:
            yield from flush()
    finally:
        reader.close()
        if net is not None:
            net.train(was_training)
