"""Per-image object IoU: how well one image's objects are covered, whatever their size."""

from __future__ import annotations

import numpy as np

from core.classmap import IGNORE_INDEX
from core.metrics.resize import match_size


def image_iou(pred: np.ndarray, gt: np.ndarray, ignore_index: int = IGNORE_INDEX) -> float:
    """IoU of the foreground (non-background) pixels of one image, in [0, 1].

    ``pred``, ``gt``: ``(H, W)`` uint8 class indices (``pred`` resized to ``gt`` by nearest
    neighbour). Intersection = pixels where both are foreground AND of the same class; union =
    pixels where either is foreground. Pixels whose ground truth is ``ignore_index`` are not
    counted; a predicted ``ignore_index`` counts as background. With one foreground class this is
    the usual object IoU. An image with no foreground in either scores 1.0.
    """
    gt = np.asarray(gt)
    pred = match_size(np.asarray(pred), gt)
    valid = gt != ignore_index
    g = valid & (gt != 0)
    p = valid & (pred != 0) & (pred != ignore_index)
    union = int(np.count_nonzero(g | p))
    if union == 0:
        return 1.0
    return float(np.count_nonzero(g & p & (pred == gt)) / union)
