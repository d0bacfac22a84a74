"""``gfn-autolabel report RUN_DIR [--gt MASKS_DIR]``: the overlays and the per-round plot of a run.

Works on any finished (or interrupted) run folder. With ground truth (``--gt``, or the masks the run
was given) the plot shows mIoU per round; without, the label-free signals the run recorded:
reliability, mean foreground area, fraction of masks kept by the filters, the collapse guard's
verdict. ``run`` writes the same report into ``RUN_DIR/report`` when it finishes.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="write a run's overlays and per-round plot (quality with --gt, else label-free signals)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by `gfn-autolabel run`")
    p.add_argument("--gt", metavar="MASKS_DIR", help="ground-truth masks <stem>.png (class indices of the run)")
    p.add_argument("--out", metavar="DIR", help="report folder (default RUN_DIR/report; replaced when it exists)")
    p.add_argument(
        "--limit",
        type=int,
        default=12,
        metavar="N",
        help="overlays of the N least reliable images (0 = all; default 12)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from core.cli import CLIError
    from core.refine.report import write_report

    if args.limit < 0:
        raise CLIError(f"--limit must be 0 (all) or more, got {args.limit}")
    rep = write_report(args.run_dir, args.out, gt=args.gt, limit=args.limit or None)
    kind = "quality against ground truth" if rep.with_gt else "label-free signals"
    print(f"plot ({kind}): {rep.plot}")
    print(f"overlays:     {rep.folder / 'overlays'}/  ({len(rep.overlays)} pictures, least reliable first)")
    return 0
