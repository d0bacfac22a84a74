"""``gfn-autolabel evaluate PRED GT``: score predicted masks against ground truth.

PRED and GT are each a folder of PNG masks, a COCO JSON or a VOC root (detected; a run folder's
``final/masks`` is found too). Images present in only one of them are skipped with a warning.
mIoU is taken from one confusion matrix over all images, averaged over the classes present in
the ground truth or the prediction; mean image IoU averages each image's foreground IoU.
"""

from __future__ import annotations

import argparse
import json
import math


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="score predicted masks against ground-truth masks (mIoU, ...)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pred", help="predicted masks: PNG folder, COCO .json or VOC root")
    p.add_argument("gt", help="ground-truth masks: PNG folder, COCO .json or VOC root")
    p.add_argument("--classes", metavar="JSON", help="class map {index: name} when the masks do not carry one")
    p.add_argument("--tolerance", type=int, default=2, help="boundary F-score tolerance in pixels (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return p


def _fmt(v: float | None) -> str:
    return "   n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:6.4f}"


def format_table(result) -> str:
    """The per-class IoU table and the summary lines, for the terminal."""
    width = max([len("class"), *(len(n) for n in result.per_class_iou)])
    lines = [f"{'class':<{width}}  IoU"]
    lines += [f"{name:<{width}}  {_fmt(v)}" for name, v in result.per_class_iou.items()]
    lines += [
        "",
        f"mIoU            {_fmt(result.miou)}",
        f"pixel accuracy  {_fmt(result.pixel_accuracy)}",
        f"mean image IoU  {_fmt(result.mean_image_iou)}",
        f"boundary F ({result.tolerance}px) {_fmt(result.boundary_f)}",
        f"images          {result.n_images}",
    ]
    return "\n".join(lines)


def run(args) -> int:
    from core.cli.progress import ProgressBars
    from core.data.classes import load_classes
    from core.formats import load_masks
    from core.formats.remap import remap_masks
    from core.metrics import evaluate_masks

    pred, pred_cmap = load_masks(args.pred)
    gt, gt_cmap = load_masks(args.gt)
    cmap = load_classes(args.classes) or gt_cmap or pred_cmap
    if cmap is not None:
        if pred_cmap is not None and pred_cmap != cmap:
            pred = remap_masks(pred, pred_cmap, cmap)
        if gt_cmap is not None and gt_cmap != cmap:
            gt = remap_masks(gt, gt_cmap, cmap)
    with ProgressBars() as bars:
        result = evaluate_masks(
            pred,
            gt,
            cmap.num_classes if cmap else None,
            list(cmap.names) if cmap else None,
            tolerance=args.tolerance,
            progress=bars,
        )
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_table(result))
    return 0
