"""Evaluating a model on (image, mask) pairs, and choosing the guided filter's ``r`` / ``eps``.

A small pooled confusion matrix is kept here so the trainer does not depend on ``core.metrics``;
mIoU = mean over classes present (in ground truth or prediction) of ``TP / (TP + FP + FN)``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from core.classmap import IGNORE_INDEX
from core.network.preprocess import to_input
from core.training.data import Pair, limit_side, load_image, load_mask
from core.training.predict import _device, predict

if TYPE_CHECKING:
    from core.network.gfn import GFN

log = logging.getLogger(__name__)


def confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = ground truth, columns = prediction; gt 255 ignored."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size")
    keep = (gt != IGNORE_INDEX) & (gt < num_classes)
    idx = gt[keep].astype(np.int64) * num_classes + np.minimum(pred[keep].astype(np.int64), num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(cm: np.ndarray) -> tuple[float, list[float]]:
    """Mean IoU over classes with a non-empty union, and the per-class IoUs (nan when empty)."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return (float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")), iou.tolist()


def evaluate_model(
    model: GFN,
    pairs: Sequence[Pair],
    *,
    num_classes: int | None = None,
    max_side: int | None = None,
    batch_size: int = 4,
    tta_flip: bool = False,
) -> dict[str, Any]:
    """Pooled ``{"miou", "iou", "pixel_accuracy", "n_images"}`` of ``model`` over ``pairs``."""
    k = num_classes or model.config.num_classes
    cm = np.zeros((k, k), np.int64)
    preds = predict(model, [im for im, _ in pairs], batch_size=batch_size, tta_flip=tta_flip, max_side=max_side)
    for i, ((_, mask), pred) in enumerate(zip(pairs, preds)):
        cm += confusion(pred.mask, load_mask(mask, i), k)
    m, iou = miou(cm)
    return {
        "miou": m,
        "iou": iou,
        "pixel_accuracy": float(np.diag(cm).sum() / max(cm.sum(), 1)),
        "n_images": len(pairs),
    }


def grid_search_gf(
    model: GFN,
    val_pairs: Sequence[Pair],
    radii: Sequence[int],
    epss: Sequence[float],
    *,
    max_side: int | None = 512,
) -> tuple[int, float, list[dict[str, Any]]]:
    """Choose the guided filter's ``(r, eps)`` by validation mIoU (paper 001, section V-A).

    The network's features up to the guided filter are computed once per image; each
    ``(r, eps)`` then only re-runs the filter. The model's GF module is left set to the best pair
    (ties: the first in ``radii x epss`` order).

    Returns:
        ``(r, eps, table)`` with ``table`` a list of ``{"r", "eps", "miou"}`` in grid order.
    """
    gf = getattr(model, "gf", None)
    if gf is None:
        raise ValueError("the model has no guided filter module (use_gf=False); nothing to search")
    if not radii or not epss:
        raise ValueError(f"radii and epss must be non-empty, got radii={list(radii)} epss={list(epss)}")
    if not val_pairs:
        raise ValueError("grid_search_gf needs at least one validation pair")
    k = model.config.num_classes
    was_training = model.training
    model.eval()
    cached = []
    with torch.inference_mode():
        for i, (im, m) in enumerate(val_pairs):
            image, gt = load_image(im, i), load_mask(m, i)
            small = limit_side(image, max_side)
            coarse, guide = model.features(to_input(small).to(_device(model)))
            cached.append((coarse, guide, small.shape[:2], gt))
    old = (gf.r, gf.eps)
    table: list[dict[str, Any]] = []
    try:
        for r, eps in itertools.product(radii, epss):
            gf.r, gf.eps = int(r), float(eps)
            cm = np.zeros((k, k), np.int64)
            with torch.inference_mode():
                for coarse, guide, size, gt in cached:
                    pred: np.ndarray = model.refine(coarse, guide, size).argmax(1)[0].cpu().numpy().astype(np.uint8)
                    if pred.shape != gt.shape:
                        pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_NEAREST)
                    cm += confusion(pred, gt, k)
            table.append({"r": int(r), "eps": float(eps), "miou": miou(cm)[0]})
            log.info("guided filter r=%d eps=%g: mIoU %.4f", r, eps, table[-1]["miou"])
    except Exception:
        gf.r, gf.eps = old
        raise
    finally:
        model.train(was_training)
    best = max(table, key=lambda row: (np.nan_to_num(row["miou"], nan=-1.0), -table.index(row)))
    gf.r, gf.eps = best["r"], best["eps"]
    return best["r"], best["eps"], table
