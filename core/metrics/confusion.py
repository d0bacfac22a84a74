"""A confusion matrix accumulated over a dataset, and the IoU measures drawn from it."""

from __future__ import annotations

import numpy as np

from core.classmap import IGNORE_INDEX
from core.metrics.resize import match_size


class ConfusionMatrix:
    """``matrix[g, p]`` = number of pixels of ground-truth class ``g`` predicted as ``p``.

    Pixels whose ground truth is ``ignore_index`` are not counted. A prediction of
    ``ignore_index`` ("no answer") counts against the true class (a miss in its IoU) but for no
    predicted class. Predictions are resized to the ground truth's size (nearest neighbour).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX):
        if not isinstance(num_classes, (int, np.integer)) or not 1 <= num_classes <= 255:
            raise ValueError(f"num_classes must be an integer in 1..255, got {num_classes!r}")
        if not num_classes <= ignore_index <= 255:
            raise ValueError(f"ignore_index must lie in {num_classes}..255, got {ignore_index!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        k = self.num_classes
        # column k collects predictions of ignore_index ("no answer")
        self._counts = np.zeros((k, k + 1), dtype=np.int64)

    @property
    def matrix(self) -> np.ndarray:
        """``(K, K) int64`` counts, rows = ground truth, columns = prediction."""
        return self._counts[:, : self.num_classes].copy()

    def update(self, pred: np.ndarray, gt: np.ndarray) -> ConfusionMatrix:
        """Add one image: ``pred`` and ``gt`` are ``(H, W)`` uint8 class indices (``pred`` of any size).

        Raises ``ValueError`` for a class index outside ``0..K-1`` (other than the ignore index).
        """
        gt = _as_uint8(np.asarray(gt), "ground truth")
        pred = match_size(_as_uint8(np.asarray(pred), "prediction"), gt)
        # one pass over the pixels: a 256 x 256 table of (gt, pred) pairs, then folded to K classes
        pairs = (gt.astype(np.uint16) << 8) | pred
        table = np.bincount(pairs.ravel(), minlength=256 * 256).reshape(256, 256)
        k, ign = self.num_classes, self.ignore_index
        for what, totals in (("ground truth", table.sum(1)), ("prediction", table.sum(0))):
            bad = [int(v) for v in np.flatnonzero(totals[k:]) + k if v != ign]
            if bad:
                raise ValueError(f"{what} holds class index(es) {bad}, outside 0..{k - 1} (and {ign} = ignore)")
        self._counts[:, :k] += table[:k, :k]
        if ign >= k:
            self._counts[:, k] += table[:k, ign]
        return self

    def truncated(self, num_classes: int) -> ConfusionMatrix:
        """A copy keeping classes ``0..num_classes-1``; raises if a dropped class has any count."""
        k = self.num_classes
        if num_classes > k:
            raise ValueError(f"cannot grow a {k}-class matrix to {num_classes} classes")
        dropped = self._counts[num_classes:, :].sum() + self._counts[:, num_classes:k].sum()
        if dropped:
            raise ValueError(f"classes {num_classes}..{k - 1} have counts; cannot drop them")
        out = ConfusionMatrix(num_classes, self.ignore_index)
        out._counts[:, :num_classes] = self._counts[:num_classes, :num_classes]
        out._counts[:, num_classes] = self._counts[:num_classes, k]
        return out

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes}-class into {self.num_classes}-class matrix")
        self._counts += other._counts
        return self

    def iou(self) -> np.ndarray:
        """Per-class IoU ``(K,) float64`` in [0, 1]; NaN for a class absent from both GT and prediction."""
        k = self.num_classes
        tp = np.diag(self._counts[:, :k]).astype(np.float64)
        gt_total = self._counts.sum(1)
        pred_total = self._counts[:, :k].sum(0)
        union = gt_total + pred_total - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes present in the ground truth or the prediction (NaN if none)."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels / counted (non-ignored) pixels, in [0, 1] (NaN if nothing was counted)."""
        total = self._counts.sum()
        return float(np.trace(self._counts[:, : self.num_classes]) / total) if total else float("nan")

    def total(self) -> int:
        """Number of counted pixels."""
        return int(self._counts.sum())


def _as_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must hold integer class indices, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"{what} values must lie in 0..255, got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)
