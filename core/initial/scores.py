"""Per-image confidence of an initial mask, in [0, 1], without ground truth."""

from __future__ import annotations

import numpy as np


def margin_confidence(probs: np.ndarray) -> float:
    """Mean over pixels of (top-1 minus top-2 probability) of ``(K, h, w)`` probs, in [0, 1]."""
    if probs.shape[0] < 2:
        return 1.0
    part = np.sort(probs, axis=0)
    return float(np.clip((part[-1] - part[-2]).mean(), 0.0, 1.0))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty): the agreement of two recipes."""
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def colour_confidence(image: np.ndarray, fg: np.ndarray, bins: int = 16) -> float:
    """How well colour histograms of fg and bg explain a binary mask, in [0, 1].

    Mean posterior of each pixel's own label under fg/bg colour histograms (``bins``^3),
    mapped from [0.5, 1] to [0, 1]; 0 for an empty or full mask.
    """
    fg = fg.astype(bool)
    if fg.all() or not fg.any():
        return 0.0
    q = (image.astype(np.int32) * bins) // 256
    idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hf = np.bincount(idx[fg], minlength=bins**3).astype(np.float64) + 0.5
    hb = np.bincount(idx[~fg], minlength=bins**3).astype(np.float64) + 0.5
    pf = hf[idx] / hf.sum()
    pb = hb[idx] / hb.sum()
    prior = fg.mean()
    post_fg = pf * prior / (pf * prior + pb * (1 - prior))
    own = np.where(fg, post_fg, 1.0 - post_fg).mean()
    return float(np.clip(2.0 * own - 1.0, 0.0, 1.0))
