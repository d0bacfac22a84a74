"""``gfn-autolabel train --images DIR --masks DIR --out MODEL.pt``: train a GFN on image/mask pairs.

Masks are class-index PNGs named after the images' stems (255 = ignore). The class map comes from
``--classes classes.json`` or, without it, from the largest index found (``class_1``, ``class_2``...).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

TRAIN_GF_MODE = "fast"
"""The guided filter ``train`` builds by default. Supervised training on human masks measured better
with it (``docs/RESULTS.md``): ``--time-budget 720`` on ECSSD dev -> the dev horses 0.901 against 0.892,
and +0.013 to +0.029 at equal CPU seconds over three seeds. The rounds keep ``GFNConfig.gf_mode``
(stride4): there the fast filter gave no gain."""


def add_parser(sub) -> argparse.ArgumentParser:
    from core.network.config import ABLATIONS, BACKBONES, GF_MODES, GFNConfig
    from core.training.config import TrainConfig

    d = TrainConfig()

    p = sub.add_parser("train", help="train a Guided Filter Network on images and class-index masks")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--masks", required=True, help="folder of class-index PNG masks named <image stem>.png")
    p.add_argument("--out", required=True, help="checkpoint file to write (e.g. model.pt)")
    p.add_argument("--classes", help="class map JSON {index: name} (default: from the largest index in the masks)")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"training epochs (default {d.epochs}; with --time-budget the run trains until the budget)",
    )
    p.add_argument("--backbone", default="mobilenet_v2", choices=BACKBONES, help="default mobilenet_v2")
    p.add_argument("--no-pretrained", action="store_true", help="random backbone init instead of ImageNet weights")
    p.add_argument(
        "--modules",
        choices=list(ABLATIONS),
        default=None,
        help="GFN module set (default: GFNConfig's, every module on)",
    )
    p.add_argument(
        "--gf-mode",
        choices=GF_MODES,
        default=TRAIN_GF_MODE,
        help=f"the network's guided filter: fast (coefficients at stride 4, applied to a full-resolution "
        f"guidance) or stride4 (the paper's; the rounds' default, {GFNConfig.gf_mode}); default {TRAIN_GF_MODE}",
    )
    p.add_argument("--crop-size", type=int, default=None, help=f"training crop side (default {d.crop_size})")
    p.add_argument("--batch-size", type=int, default=None, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {d.lr:g})")
    p.add_argument(
        "--max-side", type=int, default=None, help=f"downscale larger images to this side first (default {d.max_side})"
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="train for this many seconds (the cosine schedule spans the budget)",
    )
    p.add_argument(
        "--legacy-recipe",
        action="store_true",
        help="paper 001's SGD recipe used before (lr 0.007, step decay, crop 321, nothing frozen); "
        "options given on the command line win",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any TrainConfig setting, repeatable (e.g. --set freeze_stages=2 --set optimizer=sgd); "
        "VALUE is read as JSON when it parses",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def _pairs(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
    from core.cli import CLIError
    from core.io.images import list_images

    if not masks_dir.is_dir():
        raise FileNotFoundError(f"mask folder {masks_dir} does not exist or is not a folder")
    pairs, missing = [], []
    for img in list_images(images_dir):
        m = masks_dir / f"{img.stem}.png"
        (pairs.append((img, m)) if m.is_file() else missing.append(img.name))
    if missing:
        log.warning("%d image(s) have no mask in %s and are skipped, e.g. %s", len(missing), masks_dir, missing[:3])
    if not pairs:
        raise CLIError(f"no image in {images_dir} has a mask <stem>.png in {masks_dir}")
    return pairs


def _classmap(pairs: list[tuple[Path, Path]], classes: str | None):
    from core.classmap import IGNORE_INDEX, ClassMap
    from core.io.images import read_mask

    if classes:
        return ClassMap.load(classes)
    top = 0
    for _, m in pairs:
        mask = read_mask(m)
        vals = mask[mask != IGNORE_INDEX]
        top = max(top, int(vals.max()) if vals.size else 0)
    top = max(top, 1)
    log.info("no --classes: %d foreground class(es) from the largest mask index", top)
    return ClassMap(("background", *[f"class_{i}" for i in range(1, top + 1)]))


def train_config(args: argparse.Namespace):
    """The ``TrainConfig`` of the command line: the defaults (or ``--legacy-recipe``), the options
    given, then ``--set`` items."""
    from core.config import parse_key_values
    from core.training.config import LEGACY_RECIPE, TrainConfig

    given = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "crop_size": args.crop_size,
        "lr": args.lr,
        "max_side": args.max_side,
    }
    fields = dict(LEGACY_RECIPE) if args.legacy_recipe else {}
    fields.update({k: v for k, v in given.items() if v is not None})
    fields.update({"time_budget_s": args.time_budget, "seed": args.seed, "num_threads": args.threads})
    fields.update(parse_key_values(args.set, "--set"))
    return TrainConfig.from_dict(fields)


def run(args) -> int:
    from core.cli import CLIError
    from core.cli.progress import ProgressBars
    from core.io.atomic import check_can_write
    from core.network import GFNConfig, build_model
    from core.training.trainer import train

    out = Path(args.out)
    check_can_write(out, args.overwrite)
    pairs = _pairs(Path(args.images), Path(args.masks))
    classmap = _classmap(pairs, args.classes)
    net = {"backbone": args.backbone, "pretrained": not args.no_pretrained, "num_classes": classmap.num_classes}
    net["gf_mode"] = getattr(args, "gf_mode", None) or TRAIN_GF_MODE
    modules = getattr(args, "modules", None)
    gcfg = GFNConfig.for_ablation(modules, **net) if modules else GFNConfig(**net)
    try:
        tcfg = train_config(args)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    model = build_model(gcfg)
    with ProgressBars(enabled=getattr(args, "verbose", 0) >= 0) as bars:
        res = train(model, pairs, tcfg, progress=bars, checkpoint_path=out, classmap=classmap, gfn_config=gcfg)
    losses = ", ".join(f"{x:.3f}" for x in res.losses[-3:])
    if res.stopped_reason == "interrupted":
        print(f"interrupted after {res.epochs_done} epoch(s); last good checkpoint: {res.checkpoint or 'none'}")
        return 130
    print(
        f"trained {res.epochs_done} epoch(s) on {len(pairs)} images ({res.stopped_reason}, "
        f"{res.seconds:.0f}s, last losses {losses}); wrote {res.checkpoint}"
    )
    return 0
