"""Ground-truth evaluation of one round's masks (reporting only, unless ``select_by="gt"``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.data.dataset import Dataset
from core.io.images import read_mask

log = logging.getLogger(__name__)


def evaluate_round(dataset: Dataset, masks_dir: Path) -> dict[str, Any] | None:
    """mIoU etc. of ``masks_dir/<stem>.png`` against the ground truth of the samples that have it.

    Returns ``EvalResult.to_dict()`` minus the per-image list (kept as ``per_image_iou`` keyed by
    stem), or ``None`` when no image has ground truth.
    """
    from core.metrics import evaluate_masks

    gt_ds = dataset.with_gt()
    if len(gt_ds) == 0:
        return None
    pred, gt = {}, {}
    for s in gt_ds:
        pred[s.stem] = read_mask(Path(masks_dir) / f"{s.stem}.png")
        gt[s.stem] = s.require_mask()
    res = evaluate_masks(pred, gt, dataset.classmap.num_classes, class_names=list(dataset.classmap.names))
    out = res.to_dict()
    return out
