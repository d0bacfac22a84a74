"""``gfn-autolabel export RUN_DIR --to {coco,voc,png}``: write a run's masks in a standard format."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli import CLIError
from core.progress import Progress

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
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return p


def export_run(
    run_dir: str | Path,
    to: str,
    out: str | Path | None = None,
    *,
    round_index: int | None = None,
    polygons: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Export the final (or round ``round_index``'s) masks of a run with ``core.formats.export_masks``."""
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
    return export_masks(masks, dataset, dst, to=to, polygons=polygons, overwrite=overwrite, progress=progress)


def run(args: argparse.Namespace) -> int:
    from core.cli.progress import ProgressBars

    with ProgressBars() as bars:
        dst = export_run(
            args.run_dir,
            args.to,
            args.out,
            round_index=args.round,
            polygons=args.polygons,
            overwrite=args.overwrite,
            progress=bars,
        )
    print(f"wrote {args.to} export to {dst}")
    return 0
