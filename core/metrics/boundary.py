"""Boundary F-score: do the predicted object outlines lie where the true ones are?"""

from __future__ import annotations

import cv2
import numpy as np

from core.classmap import IGNORE_INDEX
from core.metrics.resize import match_size


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: pixels with a 4-neighbour of another value (the image border is no boundary)."""
    b = np.zeros(mask.shape, dtype=bool)
    dx = mask[:, 1:] != mask[:, :-1]
    dy = mask[1:, :] != mask[:-1, :]
    b[:, 1:] |= dx
    b[:, :-1] |= dx
    b[1:, :] |= dy
    b[:-1, :] |= dy
    return b


def _dilate(b: np.ndarray, tolerance: int) -> np.ndarray:
    if tolerance <= 0:
        return b
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    return cv2.dilate(b.astype(np.uint8), k).astype(bool)


def boundary_fscore(pred: np.ndarray, gt: np.ndarray, tolerance: int = 2, ignore_index: int = IGNORE_INDEX) -> float:
    """F-score in [0, 1] of the boundary pixels of ``pred`` against those of ``gt``.

    ``pred``, ``gt``: ``(H, W)`` uint8 class indices (``pred`` resized to ``gt`` by nearest
    neighbour). A boundary pixel is matched when a boundary pixel of the other mask lies within
    ``tolerance`` pixels (a disc). Precision counts predicted boundary pixels outside the
    ignored region, recall the ground-truth boundary pixels that are not themselves ignored
    (so VOC's ignore bands around objects put the true outline at the band's inner edge). Both
    masks without any boundary score 1.0; exactly one without scores 0.0.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    gt = np.asarray(gt)
    pred = match_size(np.asarray(pred), gt)
    valid = gt != ignore_index
    bp_all = boundary_map(pred)
    bp = bp_all & valid
    bg = boundary_map(gt) & valid
    n_p, n_g = int(bp.sum()), int(bg.sum())
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    precision = np.count_nonzero(bp & _dilate(bg, tolerance)) / n_p
    recall = np.count_nonzero(bg & _dilate(bp_all, tolerance)) / n_g
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))
