"""CAM route: class activation maps -> probabilities -> dense CRF -> argmax (paper 001 IV-A 3)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.initial.config import InitConfig
from core.postprocess.crf import dense_crf


def cam_probs(cams: np.ndarray, classes: Sequence[int], num_classes: int, bg_power: float = 1.0) -> np.ndarray:
    """Turn per-class CAMs into probabilities.

    Args:
        cams: ``(len(classes), h, w)`` maps in [0, 1].
        classes: the class index of each map (1..K-1).
        num_classes: K.
        bg_power: background score ``(1 - max cam) ** bg_power``.

    Returns:
        ``(K, h, w) float32`` summing to 1 over K (classes not in ``classes`` get 0).
    """
    if cams.shape[0] != len(classes):
        raise ValueError(f"{cams.shape[0]} maps for {len(classes)} classes")
    out = np.zeros((num_classes, *cams.shape[1:]), np.float32)
    out[0] = (1.0 - cams.max(0)) ** bg_power
    for j, c in enumerate(classes):
        out[c] = np.maximum(out[c], cams[j])
    out = np.clip(out, 1e-4, None)
    out[[c for c in range(num_classes) if c != 0 and c not in classes]] = 0.0
    out /= out.sum(0, keepdims=True)
    return out


def crf(image: np.ndarray, probs: np.ndarray, cfg: InitConfig) -> np.ndarray:
    """Dense CRF with the config's parameters; ``(K, h, w)`` -> ``(K, h, w)``."""
    keep = probs.sum(axis=(1, 2)) > 0
    q = np.zeros_like(probs)
    q[keep] = dense_crf(image, probs[keep], **cfg.crf.to_dict())
    return q
