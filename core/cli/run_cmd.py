"""``gfn-autolabel run``: label a folder of images at pixel level from image-level labels.

gfn-autolabel run --images DIR (--class NAME | --labels CSV) --out RUN_DIR [--init ROUTE]
    [--rounds N] [--source IMAGES_DIR MASKS_DIR | --source-model MODEL_PT] [--gt MASKS_DIR] [--resume] [--overwrite]
    [--backbone B] [--postprocess P] [--epochs E] [--seed S] [--max-side M] [--set KEY=VALUE] ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli import CLIError
from core.config import parse_key_values
from core.refine.config import INIT_ROUTES, POSTPROCESS_METHODS, SELECT_BY, RunConfig

EXIT_COLLAPSED = 3
"""Exit code of a run whose status is ``"collapsed"`` (its kept masks are mostly empty)."""


def add_parser(sub) -> argparse.ArgumentParser:
    d = RunConfig()
    p = sub.add_parser(
        "run",
        help="label images at pixel level (initial masks + refinement rounds)",
        description="Label every image of a folder at pixel level from image-level labels: "
        "initial masks (round 0), then rounds of GFN training, prediction, "
        "post-processing and filtering. Writes a run folder.",
        epilog=f"Exit status: 0 when the run finished (status 'ok', or 'degraded': a round collapsed and "
        f"an earlier round's masks were kept, with a warning); {EXIT_COLLAPSED} when its status is "
        "'collapsed' (the kept masks are mostly empty; run.json and the table say why); 2 on bad input; "
        "130 when interrupted.",
    )
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        help="one class for every image (use 'object' for class-agnostic foreground)",
    )
    who.add_argument("--labels", metavar="CSV", help="filename,label CSV giving each image's class")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to write")
    p.add_argument(
        "--init", default=d.init.route, choices=INIT_ROUTES, help=f"initial-mask route (default {d.init.route})"
    )
    p.add_argument(
        "--init-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a core.initial.InitConfig setting, repeatable (e.g. --init grabcut --init-option "
        "coarse=centre); VALUE is read as JSON when it parses",
    )
    p.add_argument("--rounds", type=int, default=d.rounds, help=f"maximum refinement rounds (default {d.rounds})")
    p.add_argument(
        "--source",
        nargs=2,
        metavar=("IMAGES_DIR", "MASKS_DIR"),
        help="labelled source set of a similar class for the transfer route",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes making round 0's masks and post-processing each round's images side by side "
        "(default: one per core; the masks do not depend on it)",
    )
    p.add_argument(
        "--source-model",
        metavar="MODEL_PT",
        help="a trained source network for the transfer route instead of training one on --source: a "
        "checkpoint written by `gfn-autolabel train`, or an earlier run's round_00/source_model.pt",
    )
    p.add_argument(
        "--source-images",
        type=int,
        default=d.source_images,
        metavar="N",
        help="with --source: N source images (with their masks) join every round's training "
        f"(default {d.source_images})",
    )
    p.add_argument(
        "--fixed-masks",
        metavar="DIR",
        help="human-corrected masks <stem>.png (class indices of the run) kept as fixed labels: never "
        "re-labelled nor filtered out, weighted train.fixed_weight in training, the final masks of their images",
    )
    p.add_argument(
        "--gt",
        metavar="MASKS_DIR",
        help="ground-truth masks <stem>.png, only to report quality (default: masks/ beside images/)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in RUN_DIR, or a finished one with a higher --rounds",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run in RUN_DIR: the new run is built beside it and swapped in only when it "
        "finished, so a failing re-run leaves the old run as it was",
    )
    g = p.add_argument_group("settings")
    g.add_argument("--backbone", default=d.network.backbone, help=f"(default {d.network.backbone})")
    g.add_argument("--no-pretrained", action="store_true", help="do not start from ImageNet weights")
    g.add_argument(
        "--no-init-postprocess",
        action="store_true",
        help="keep round 0 of the network routes (transfer, otsu) as the network's argmax instead "
        "of post-processing it",
    )
    g.add_argument(
        "--postprocess",
        default=d.post.chain,
        metavar="METHOD[+METHOD]",
        help=f"post-processing every round: {', '.join(POSTPROCESS_METHODS)} or a chain such as "
        f"crf+grabcut (default {d.post.chain})",
    )
    g.add_argument("--epochs", type=int, default=d.train.epochs, help=f"epochs per round (default {d.train.epochs})")
    g.add_argument(
        "--crop-size",
        type=int,
        default=d.train.crop_size,
        help=f"training crop; keep it >= --max-side so rounds train at the scale they label "
        f"(default {d.train.crop_size})",
    )
    g.add_argument(
        "--max-side",
        type=int,
        default=d.max_side,
        help=f"work at this longest side; 0 = full size (default {d.max_side})",
    )
    area = (d.filters.area_min, d.filters.area_max)
    g.add_argument(
        "--area",
        nargs=2,
        type=float,
        default=area,
        metavar=("MIN", "MAX"),
        help=f"area-ratio filter (default {area[0]} {area[1]})",
    )
    g.add_argument(
        "--select-by",
        default=d.stop.select_by,
        choices=SELECT_BY,
        help="signal that stops the run and picks the best round (default label_free; "
        "gt uses ground truth, which is then no longer a fair report)",
    )
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--threads", type=int, default=d.num_threads, help=f"torch threads (default {d.num_threads})")
    g.add_argument(
        "--config",
        metavar="JSON",
        help="RunConfig settings from a JSON file, e.g. a run's config.json (options given on the command line win)",
    )
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any RunConfig setting by its dotted name, repeatable (e.g. --set train.lr=0.005 "
        "--set post.params.crf.iters=3); VALUE is read as JSON when it parses",
    )
    g.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of failing")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument(
        "--no-report",
        action="store_true",
        help="do not write RUN_DIR/report (overlays + per-round plot; `gfn-autolabel report RUN_DIR` writes it later)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """RunConfig from ``--config`` JSON (nested, or the flat form of older runs) overlaid by the options
    given on the command line, then ``--init-option`` and ``--set``."""
    import json

    base = RunConfig()
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise CLIError(f"--config {path}: file not found")
        base = RunConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    given = {
        "init.route": args.init,
        "rounds": args.rounds,
        "network.backbone": args.backbone,
        "network.pretrained": not args.no_pretrained,
        "post.chain": args.postprocess,
        "train.epochs": args.epochs,
        "train.crop_size": args.crop_size,
        "max_side": args.max_side or None,
        "filters.area_min": args.area[0],
        "filters.area_max": args.area[1],
        "stop.select_by": args.select_by,
        "seed": args.seed,
        "num_threads": args.threads,
        "source_images": args.source_images,
        "init.postprocess": not args.no_init_postprocess,
        "init.source_model": _checkpoint_path(args.source_model),
        "post.workers": args.workers,
    }
    defaults = RunConfig().settings()
    # a JSON setting survives unless the option was changed from its default
    changes = {k: v for k, v in given.items() if v != defaults[k]}
    changes.update({f"init.options.{k}": v for k, v in parse_key_values(args.init_option, "--init-option").items()})
    changes.update(parse_key_values(args.set, "--set"))
    return base.replace(changes)


def _checkpoint_path(path: str | None) -> str | None:
    """``--source-model``'s checkpoint as an absolute path (checked to be a readable checkpoint)."""
    if path is None:
        return None
    from core.network.checkpoint import load_checkpoint

    try:
        load_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(f"--source-model: {exc}") from None
    return str(Path(path).resolve())


def load_target(args: argparse.Namespace):
    from core.data.readers import read_image_folder

    return read_image_folder(
        args.images, label=args.class_name, masks=args.gt, labels=args.labels, skip_bad=args.skip_bad
    )


def load_source(args: argparse.Namespace, dataset):
    """The ``--source`` set, its images labelled with the target's class (one-class targets) or 'object'."""
    if not args.source:
        return None
    from core.data.readers import read_image_folder

    images, masks = args.source
    fg = dataset.classmap.foreground
    label = fg[0] if len(fg) == 1 else "object"
    return read_image_folder(images, label=label, masks=masks, skip_bad=args.skip_bad)


def _report(args: argparse.Namespace) -> None:
    """Overlays and the per-round plot into RUN_DIR/report; a failure here only warns (the run is done)."""
    from core.refine.report import write_report

    if args.no_report:
        print(f"report: gfn-autolabel report {args.out}", file=sys.stderr)
        return
    try:
        rep = write_report(args.out)
    except (OSError, ValueError, ImportError) as exc:
        print(
            f"gfn-autolabel run: warning: no report ({exc}); retry with: gfn-autolabel report {args.out}",
            file=sys.stderr,
        )
        return
    print(f"report: {rep.plot} and {len(rep.overlays)} overlays in {rep.folder / 'overlays'}")


def run(args: argparse.Namespace) -> int:
    from core.cli.progress import ProgressBars
    from core.refine.fixed import read_folder as read_fixed_folder
    from core.refine.report import format_round, format_table
    from core.refine.runner import run_autolabel

    config = config_from_args(args)
    dataset = load_target(args)
    source = load_source(args, dataset)
    if config.source_images and source is None:
        raise CLIError("--source-images needs --source IMAGES_DIR MASKS_DIR")
    if args.init == "transfer" and source is None and config.init.source_model is None:
        raise CLIError("--init transfer needs --source IMAGES_DIR MASKS_DIR or --source-model MODEL_PT")
    print(
        f"labelling {len(dataset)} images of {list(dataset.classmap.foreground)} into {args.out} "
        f"({len(dataset.with_gt())} with ground truth, used only to report quality)",
        file=sys.stderr,
    )
    if args.resume and args.overwrite:
        raise CLIError("choose either --resume or --overwrite, not both")
    # --overwrite: run_autolabel builds the new run beside the old one and swaps it in only on success
    with ProgressBars(enabled=not args.no_progress) as bars:
        result = run_autolabel(
            dataset,
            args.out,
            config,
            source=source,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=bars,
            on_round=lambda info: bars.write(format_round(info)),
            fixed=read_fixed_folder(args.fixed_masks, dataset) if args.fixed_masks else None,
        )
    print(format_table(result))
    print(f"final masks (round {result.best_round}): {result.final_masks_dir}")
    _report(args)
    if result.status == "collapsed":
        print(f"gfn-autolabel run: error: {result.status_message}", file=sys.stderr)
        return EXIT_COLLAPSED
    if result.status != "ok":
        print(f"gfn-autolabel run: warning: {result.status_message}", file=sys.stderr)
    return 0
