"""``gfn-autolabel export RUN_DIR --to {coco,voc,png}``: write a run's masks in a standard format.

COCO: one annotation per (image, class) (``--coco-instances parts``: one per connected part), each
with a ``score``: the mean probability the round stored for the annotation's class over its pixels
(``round_NN/probs``), else the image's reliability (``round_NN/scores.json``). VOC: under
``OUT/VOCdevkit/VOC2012`` with ``train``/``val``/``trainval`` lists (``--val-fraction``), as
``torchvision.datasets.VOCSegmentation(OUT, year="2012", image_set=...)`` reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import CLIError
from core.progress import Progress

INSTANCES = ("class", "parts")
VAL_FRACTION = 0.2

FORMATS = ("coco", "voc", "png")


def default_destination(run_dir: Path, to: str, round_index: int | None) -> Path:
    """``RUN_DIR/export/<to>[_round_NN]`` (``.json`` for COCO)."""
    name = to if round_index is None else f"{to}_round_{round_index:02d}"
    return run_dir / "export" / (f"{name}.json" if to == "coco" else name)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a run's masks to COCO JSON, a VOC folder or PNG masks")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `gfn-autolabel run`")
    p.add_argument("--to", required=True, choices=FORMATS, help="output format")
    p.add_argument(
        "--out", metavar="PATH", help="output file (coco) or folder (voc, png); default RUN_DIR/export/<format>"
    )
    p.add_argument("--round", type=int, metavar="N", help="export round N instead of the final (best) masks")
    p.add_argument("--polygons", action="store_true", help="COCO: polygons instead of RLE")
    p.add_argument(
        "--coco-instances",
        choices=INSTANCES,
        default="class",
        help="COCO: one annotation per image and class (default, as FiftyOne and Label Studio write "
        "semantic masks) or one per connected part",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=VAL_FRACTION,
        metavar="F",
        help=f"VOC: share of the images listed in val.txt, chosen by a hash of the name (default {VAL_FRACTION})",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output (built beside it and swapped in only when complete)",
    )
    return p


def round_probs(run_dir: Path, round_index: int, stems: list[str]) -> dict[str, object]:
    """``{stem: loader of the (K, H, W) probabilities}`` stored by a round (``round_NN/probs/<stem>.npz``)."""
    from functools import partial

    from core.refine import rundir

    folder = rundir.round_dir(run_dir, round_index) / "probs"
    return {s: partial(rundir.load_probs, folder / f"{s}.npz") for s in stems if (folder / f"{s}.npz").is_file()}


def export_run(
    run_dir: str | Path,
    to: str,
    out: str | Path | None = None,
    *,
    round_index: int | None = None,
    polygons: bool = False,
    instances: str = "class",
    val_fraction: float = VAL_FRACTION,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Export the final (or round ``round_index``'s) masks of a run with ``core.formats.export_masks``.

    COCO annotations are scored from the round's stored probabilities (``round_probs``), else its
    reliability scores. Returns the file or folder written (for VOC, the ``VOC2012`` folder).
    """
    from core.formats import export_masks
    from core.refine.runner import load_run

    run = load_run(run_dir)
    if round_index is not None and round_index not in [r.index for r in run.rounds]:
        raise CLIError(
            f"{run_dir} has no finished round {round_index}; finished rounds: {[r.index for r in run.rounds]}"
        )
    masks = run.masks(round_index)
    if not masks:
        raise CLIError(f"{run_dir} holds no masks to export (is the run finished? try --round N)")
    dataset = run.dataset
    dataset = dataset.with_samples([s for s in dataset if s.stem in masks])
    dst = Path(out) if out else default_destination(Path(run_dir), to, round_index)
    probs, scores = None, None
    if to == "coco":  # the annotations' scores
        k = run.best_round if round_index is None else round_index
        probs, scores = round_probs(Path(run_dir), k, list(masks)), run.round(k).scores
    return export_masks(
        masks,
        dataset,
        dst,
        to=to,
        polygons=polygons,
        instances=instances,
        probs=probs,  # type: ignore[arg-type]
        image_scores=scores,
        val_fraction=val_fraction,
        overwrite=overwrite,
        progress=progress,
    )


def run(args: argparse.Namespace) -> int:
    from core.cli.progress import ProgressBars

    with ProgressBars() as bars:
        dst = export_run(
            args.run_dir,
            args.to,
            args.out,
            round_index=args.round,
            polygons=args.polygons,
            instances=args.coco_instances,
            val_fraction=args.val_fraction,
            overwrite=args.overwrite,
            progress=bars,
        )
    print(f"wrote {args.to} export to {dst}")
    if args.to == "voc":
        print(
            f"load it with torchvision.datasets.VOCSegmentation({str(dst.parent.parent)!r}, year='2012', "
            "image_set='train' | 'val' | 'trainval')"
        )
    return 0
