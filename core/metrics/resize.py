"""Bringing a prediction to its ground truth's size (nearest neighbour: class indices stay indices)."""

from __future__ import annotations

import cv2
import numpy as np


def match_size(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` (``(h, w)`` integer mask) resized to ``gt.shape`` with nearest neighbour if needed."""
    if pred.ndim != 2 or gt.ndim != 2:
        raise ValueError(f"masks must be 2-D (H, W); got prediction {pred.shape} and ground truth {gt.shape}")
    if pred.shape == gt.shape:
        return pred
    return cv2.resize(
        np.ascontiguousarray(pred, dtype=np.uint8), (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST
    )
