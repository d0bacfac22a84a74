"""``gfn-autolabel predict --model MODEL.pt --images DIR --out DIR``: one class-index PNG per image."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("predict", help="predict class-index masks for a folder of images with a trained model")
    p.add_argument("--model", required=True, help="checkpoint written by 'gfn-autolabel train'")
    p.add_argument("--images", required=True, help="folder of images")
    p.add_argument("--out", required=True, help="folder for <stem>.png masks (same size as each image)")
    p.add_argument("--overwrite", action="store_true", help="replace existing mask files")
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--batch-size", type=int, default=4, help="default 4")
    p.add_argument("--max-side", type=int, default=None, help="run the network on images downscaled to this side")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def run(args) -> int:
    import torch

    from core.cli import CLIError
    from core.cli.progress import ProgressBars
    from core.io.atomic import OutputExistsError
    from core.io.images import list_images, write_mask
    from core.network.checkpoint import load_checkpoint
    from core.training.predict import predict

    if args.threads:
        torch.set_num_threads(args.threads)
    images = list_images(args.images)
    out = Path(args.out)
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})[:5]
        raise CLIError(f"several images share a stem, so their masks would collide: {dup}")
    targets = [out / f"{s}.png" for s in stems]
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(
            f"{len(existing)} mask(s) already exist in {out} (e.g. {existing[0].name}); pass --overwrite to replace them"
        )
    ckpt = load_checkpoint(args.model)
    out.mkdir(parents=True, exist_ok=True)
    with ProgressBars() as bars:
        preds = predict(ckpt.model, images, batch_size=args.batch_size, tta_flip=args.tta,
                        max_side=args.max_side, progress=bars)
        for target, pred in zip(targets, preds):
            write_mask(target, pred.mask, overwrite=args.overwrite)
    print(f"wrote {len(targets)} mask(s) to {out} (classes: {', '.join(ckpt.classmap.names)})")
    return 0
