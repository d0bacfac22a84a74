"""Edge-preserving smoothing of probabilities with the guided filter (He et al. 2013)."""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)


def _guided_torch(guide: np.ndarray, probs: np.ndarray, radius: int, eps: float) -> np.ndarray | None:
    """The project's own differentiable filter (``core.filters.guided``), or ``None`` if absent."""
    try:
        import torch

        from core.filters.guided import guided_filter
    except ImportError:
        return None
    with torch.no_grad():
        i = torch.from_numpy(np.ascontiguousarray(guide.transpose(2, 0, 1)))[None]
        p = torch.from_numpy(np.ascontiguousarray(probs))[None]
        out = guided_filter(i, p, radius, eps)
    return out[0].cpu().numpy().astype(np.float32)


def _guided_cv2(guide: np.ndarray, probs: np.ndarray, radius: int, eps: float) -> np.ndarray:
    try:
        gf = cv2.ximgproc.guidedFilter
    except AttributeError as exc:  # pragma: no cover - depends on the OpenCV build
        raise ImportError("the guided filter needs core.filters.guided or opencv-contrib (cv2.ximgproc)") from exc
    return np.stack([gf(guide, np.ascontiguousarray(c), radius, eps) for c in probs]).astype(np.float32)


def guided_refine(image: np.ndarray, probs: np.ndarray, *, radius: int | None = None, eps: float = 1e-3) -> np.ndarray:
    """Guided-filter every probability channel with the image as guidance.

    Args:
        image: ``(H, W, 3) uint8`` RGB guidance (scaled to [0, 1]).
        probs: ``(K, H, W)`` float probabilities.
        radius: window radius in px; default 1% of the image diagonal (at least 2).
        eps: regularisation (on [0, 1] intensities): larger = smoother.

    Returns:
        ``(K, H, W) float32`` probabilities (clipped to >= 0 and renormalised over K).
    """
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs must be (K, H, W) matching the image {image.shape[:2]}, got {probs.shape}")
    if radius is None:
        radius = max(2, round(0.01 * float(np.hypot(*image.shape[:2]))))
    guide = image.astype(np.float32) / 255.0
    p = probs.astype(np.float32)
    out = None
    try:
        out = _guided_torch(guide, p, int(radius), float(eps))
    except Exception as exc:  # contract mismatch in the torch filter: fall back, but say so
        log.warning("core.filters.guided.guided_filter failed (%s); using cv2.ximgproc.guidedFilter", exc)
    if out is None or out.shape != p.shape:
        out = _guided_cv2(guide, p, int(radius), float(eps))
    out = np.clip(out, 0.0, None)
    out /= np.maximum(out.sum(0, keepdims=True), 1e-8)
    return out.astype(np.float32)
