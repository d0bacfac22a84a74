"""Area calibration: stop the masks from shrinking (or growing) round after round.

A network trained on noisy labels with a dominant background is under-confident on the object
(thin parts, low contrast), so its argmax masks come out smaller than the labels it learnt from;
post-processing and retraining compound it and the loop drifts. Label-free fix: shift the
foreground log-odds of every image by one offset ``b`` so that, on the images the network was
trained on, the mean predicted foreground fraction equals the mean foreground fraction of their
training labels.

Shapes: probabilities ``(K, H, W) float32`` (class 0 = background); foreground probability
``q = 1 - p[0]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BINS = 256
MAX_SHIFT = 3.0
"""Largest |log-odds offset| applied (a decision threshold between about 0.05 and 0.95)."""


def fg_histogram(probs: np.ndarray, bins: int = BINS) -> np.ndarray:
    """``(bins,) float64``: fraction of the image's pixels per bin of foreground probability in [0, 1]."""
    q = 1.0 - probs[0]
    h, _ = np.histogram(q, bins=bins, range=(0.0, 1.0))
    return h / max(q.size, 1)


def area_shift(histograms: Sequence[np.ndarray], target_area: float) -> float:
    """The log-odds offset ``b`` making the mean per-image fraction of ``q > sigmoid(-b)`` closest to
    ``target_area`` (mean foreground fraction of the training labels), clipped to ``±MAX_SHIFT``.

    0.0 when there are no histograms.
    """
    if not len(histograms):
        return 0.0
    if not 0.0 <= target_area <= 1.0:
        raise ValueError(f"target_area must lie in [0, 1], got {target_area}")
    mean = np.mean(np.stack(histograms), axis=0)
    bins = mean.shape[0]
    above = np.cumsum(mean[::-1])[::-1]  # above[i] = fraction with q >= i / bins
    edges = np.arange(bins) / bins
    lo, hi = 1.0 / (1.0 + np.exp(MAX_SHIFT)), 1.0 / (1.0 + np.exp(-MAX_SHIFT))
    ok = (edges >= lo) & (edges <= hi)
    i = int(np.argmin(np.where(ok, np.abs(above - target_area), np.inf)))
    tau = float(np.clip(edges[i], lo, hi))
    return float(np.clip(-np.log(tau / (1.0 - tau)), -MAX_SHIFT, MAX_SHIFT))


def shift_probs(probs: np.ndarray, shift: float) -> np.ndarray:
    """Multiply every foreground class's probability by ``exp(shift)`` and renormalise.

    For two classes this adds ``shift`` to the foreground log-odds. Returns a new float32 array.
    """
    if shift == 0.0:
        return probs.astype(np.float32, copy=True)
    out = probs.astype(np.float32, copy=True)
    out[1:] *= np.float32(np.exp(shift))
    out /= np.maximum(out.sum(axis=0, keepdims=True), np.float32(1e-8))
    return out
