"""Ground-truth evaluation of one round's masks (reporting only, unless ``select_by="gt"``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.data.dataset import Dataset, Sample

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
    # one image's pair in memory at a time: the metrics read each mask as they reach it
    pred = {s.stem: Path(masks_dir) / f"{s.stem}.png" for s in gt_ds}
    gt = _GroundTruth(gt_ds)
    res = evaluate_masks(pred, gt, dataset.classmap.num_classes, class_names=list(dataset.classmap.names))
    out = res.to_dict()
    return out


class _GroundTruth(Mapping[str, np.ndarray]):
    """``{stem: ground-truth mask}`` of ``samples``, each read when it is looked up (not held)."""

    def __init__(self, samples: Dataset) -> None:
        self._samples: dict[str, Sample] = {s.stem: s for s in samples}

    def __getitem__(self, stem: str) -> np.ndarray:
        return self._samples[stem].require_mask()

    def __iter__(self) -> Iterator[str]:
        return iter(self._samples)

    def __len__(self) -> int:
        return len(self._samples)
