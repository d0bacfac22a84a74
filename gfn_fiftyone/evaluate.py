"""``evaluate_rounds``: score every round field of a run against a ground-truth Segmentation field.

For each round ``k`` of run ``<prefix>``:

* FiftyOne's ``evaluate_segmentations`` under the key ``<prefix>_round_<k>_eval`` (per-sample
  accuracy / precision / recall fields, the App's evaluation views);
* ``core.metrics.evaluate_masks`` on the same masks: mIoU and per-class IoU from one pixel
  confusion matrix, and the per-sample IoU written to ``<prefix>_round_<k>_iou`` so the worst masks
  can be sorted first (``view.sort_by("<prefix>_round_<k>_iou")``).

The scores are merged into the run's stored results under ``evaluations``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from core.classmap import ClassMap
from gfn_fiftyone import convert, runs
from gfn_fiftyone.naming import RunNames
from gfn_fiftyone.progress import ProgressFn

log = logging.getLogger(__name__)


def round_indices(dataset, names: RunNames) -> list[int]:
    """The rounds of ``names.prefix`` that have a field on ``dataset``, in order."""
    ks = [names.round_of(f) for f in dataset.get_field_schema()]
    return sorted(k for k in ks if k is not None)


def existing_evaluations(dataset, output_prefix: str) -> list[str]:
    """Evaluation keys and per-sample IoU fields of run ``output_prefix`` that already exist."""
    names = RunNames(output_prefix)
    ks = round_indices(dataset, names)
    taken = [names.eval_key(k) for k in ks if names.eval_key(k) in dataset.list_evaluations()]
    return taken + [names.iou(k) for k in ks if dataset.get_field(names.iou(k)) is not None]


def _gt_masks(view, gt_field: str, lut: np.ndarray | None) -> dict[str, np.ndarray]:
    out = {}
    for sid, seg in zip(view.values("id"), view.values(gt_field)):
        if seg is None:
            continue
        mask = np.asarray(seg.get_mask())
        if mask.ndim != 2:
            raise ValueError(
                f"ground truth {gt_field!r} of sample {sid} is not a class-index mask (shape {mask.shape})"
            )
        mask = mask.astype(np.uint8)
        out[sid] = mask if lut is None else lut[mask]
    return out


def evaluate_rounds(
    dataset, output_prefix: str, gt_field: str, *, overwrite: bool = False, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """Evaluate every round of run ``output_prefix`` on ``dataset`` against ``gt_field``.

    Raises ``ValueError`` when the run or the field does not exist, when the field is not a
    Segmentation, or when an evaluation key of this run exists and ``overwrite`` is not set.
    Returns ``{round: {"eval_key", "miou", "per_class_iou", "pixel_accuracy", ...}}`` (JSON-ready).
    """
    from core.metrics import evaluate_masks

    names = RunNames(output_prefix)
    record = runs.load_record(dataset, names.run_key)
    convert.require_field(dataset, gt_field, ("Segmentation",), "gt_field")
    classmap = ClassMap(tuple(record.classes))
    lut = convert.gt_lut(convert.mask_targets_of(dataset, gt_field), classmap)
    if lut is not None:
        log.warning(
            "the mask targets of %r order the classes differently from run %r; FiftyOne's own "
            "evaluation compares raw indices, core.metrics uses the remapped ones",
            gt_field,
            output_prefix,
        )
    ks = round_indices(dataset, names)
    if not ks:
        raise ValueError(
            f"run {output_prefix!r} has no round fields on dataset '{dataset.name}' (expected {names.round(0)}, ...)"
        )
    taken = existing_evaluations(dataset, output_prefix)
    if taken and not overwrite:
        raise ValueError(f"evaluations of run {output_prefix!r} exist ({taken}); pass overwrite=True to replace them")
    mask_targets = classmap.to_dict()
    out: dict[str, Any] = {}
    for n, k in enumerate(ks):
        pred_field, key = names.round(k), names.eval_key(k)
        if progress is not None:
            progress(n / len(ks), f"evaluating {pred_field}")
        if key in dataset.list_evaluations():
            dataset.delete_evaluation(key)
        view = dataset.exists(pred_field).exists(gt_field)
        if len(view) == 0:
            log.warning("no sample has both %r and %r; round %d not evaluated", pred_field, gt_field, k)
            continue
        view.evaluate_segmentations(
            pred_field, gt_field=gt_field, eval_key=key, mask_targets=mask_targets, progress=False
        )
        pred = dict(zip(view.values("id"), view.values(f"{pred_field}.mask_path")))
        gt = _gt_masks(view, gt_field, lut)
        res = evaluate_masks(pred, gt, classmap.num_classes, class_names=list(classmap.names))
        dataset.set_values(names.iou(k), {sid: float(v) for sid, v in res.per_image_iou.items()}, key_field="id")
        d = res.to_dict()
        out[str(k)] = {
            "eval_key": key,
            "iou_field": names.iou(k),
            "gt_field": gt_field,
            "miou": d["miou"],
            "per_class_iou": d["per_class_iou"],
            "pixel_accuracy": d["pixel_accuracy"],
            "mean_image_iou": d["mean_image_iou"],
            "boundary_f": d["boundary_f"],
            "n_images": d["n_images"],
        }
        log.info("%s vs %s: mIoU %.4f on %d images", pred_field, gt_field, res.miou, res.n_images)
    runs.save_results(dataset, names.run_key, evaluations={**record.evaluations, **out})
    if progress is not None:
        progress(1.0, "evaluation done")
    return out
