"""Evaluating a set of predicted masks against ground truth: ``evaluate_masks`` -> ``EvalResult``.

Measures (all in [0, 1]):

* ``miou``: from ONE confusion matrix accumulated over all images, the mean of the per-class
  IoUs over the classes that appear in the ground truth or the prediction (a class absent from
  both has no IoU: NaN in ``per_class_iou``, ``None`` in ``to_dict``). Background counts as a class.
* ``pixel_accuracy``: correct pixels over counted pixels (ground truth 255 = ignore not counted).
* ``mean_image_iou``: mean over images of the per-image object IoU (``core.metrics.image_iou``:
  foreground pixels, class-aware), so small objects weigh as much as large ones.
* ``boundary_f``: mean over images of the boundary F-score (``core.metrics.boundary``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.classmap import IGNORE_INDEX
from core.formats.validate import MaskLike, as_mask
from core.metrics.boundary import boundary_fscore
from core.metrics.confusion import ConfusionMatrix
from core.metrics.image_iou import image_iou
from core.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Scores of a prediction set; see the module docstring for each measure."""

    miou: float
    per_class_iou: dict[str, float]
    pixel_accuracy: float
    mean_image_iou: float
    boundary_f: float
    n_images: int
    per_image_iou: dict[str, float]
    confusion: np.ndarray = field(repr=False, compare=False)
    tolerance: int = 2
    missing_pred: tuple[str, ...] = ()
    missing_gt: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes ``None``; ``confusion`` is a nested list (rows = ground truth)."""

        def num(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

        return {
            "miou": num(self.miou),
            "per_class_iou": {k: num(v) for k, v in self.per_class_iou.items()},
            "pixel_accuracy": num(self.pixel_accuracy),
            "mean_image_iou": num(self.mean_image_iou),
            "boundary_f": num(self.boundary_f),
            "boundary_tolerance": self.tolerance,
            "n_images": self.n_images,
            "per_image_iou": {k: num(v) for k, v in self.per_image_iou.items()},
            "confusion": self.confusion.tolist(),
            "missing_pred": list(self.missing_pred),
            "missing_gt": list(self.missing_gt),
        }


def common_stems(pred: Mapping[str, object], gt: Mapping[str, object]) -> tuple[list[str], list[str], list[str]]:
    """``(both, only_pred, only_gt)`` stems, ``both`` in ground-truth order; warns about the others.

    Raises ``ValueError`` when no stem is shared.
    """
    both = [s for s in gt if s in pred]
    only_pred = sorted(set(pred) - set(gt))
    only_gt = [s for s in gt if s not in pred]
    if not both:
        raise ValueError(
            f"predictions and ground truth share no image: {len(pred)} predictions (e.g. {sorted(pred)[:3]}), "
            f"{len(gt)} ground-truth masks (e.g. {list(gt)[:3]})"
        )
    if only_gt:
        log.warning(
            "%d ground-truth mask(s) have no prediction and are not evaluated: %s%s",
            len(only_gt),
            only_gt[:5],
            " ..." if len(only_gt) > 5 else "",
        )
    if only_pred:
        log.warning(
            "%d prediction(s) have no ground truth and are not evaluated: %s%s",
            len(only_pred),
            only_pred[:5],
            " ..." if len(only_pred) > 5 else "",
        )
    return both, only_pred, only_gt


def evaluate_masks(
    pred: Mapping[str, MaskLike],
    gt: Mapping[str, MaskLike],
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    *,
    ignore_index: int = IGNORE_INDEX,
    tolerance: int = 2,
    progress: Progress | None = None,
) -> EvalResult:
    """Score ``pred`` against ``gt`` (``{stem: (H, W) uint8 mask or PNG path}``) on their common stems.

    ``num_classes``: K, background included (``None``: the largest index seen + 1, at least 2).
    ``class_names``: K names for ``per_class_iou`` (default ``class_0``...). Predictions are
    resized to their ground truth (nearest neighbour). Stems in only one of the two are skipped
    with a warning; none in common raises ``ValueError``.
    """
    if num_classes is None and class_names is not None:
        num_classes = len(class_names)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
    stems, only_pred, only_gt = common_stems(pred, gt)
    cm = ConfusionMatrix(num_classes if num_classes is not None else ignore_index, ignore_index)
    per_image, bf = {}, []
    for n, stem in enumerate(stems, start=1):
        g = as_mask(gt[stem], stem)
        p = as_mask(pred[stem], stem)
        try:
            cm.update(p, g)
        except ValueError as exc:
            raise ValueError(f"image {stem!r}: {exc}") from None
        per_image[stem] = image_iou(p, g, ignore_index)
        bf.append(boundary_fscore(p, g, tolerance, ignore_index))
        if progress is not None:
            progress("evaluate", n, len(stems))
    if num_classes is None:
        m = cm.matrix
        used = np.flatnonzero(m.sum(0) + m.sum(1))
        cm = cm.truncated(max(2, int(used.max()) + 1 if used.size else 2))
    k = cm.num_classes
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(k)]
    iou = cm.iou()
    return EvalResult(
        miou=cm.miou(),
        per_class_iou={names[i]: float(iou[i]) for i in range(k)},
        pixel_accuracy=cm.pixel_accuracy(),
        mean_image_iou=float(np.mean(list(per_image.values()))),
        boundary_f=float(np.mean(bf)),
        n_images=len(stems),
        per_image_iou=per_image,
        confusion=cm.matrix,
        tolerance=tolerance,
        missing_pred=tuple(only_gt),
        missing_gt=tuple(only_pred),
    )
