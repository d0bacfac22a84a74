"""``gfn-autolabel predict --model MODEL.pt --images DIR --out DIR``: one class-index PNG per image.

Every picture is decoded before the first mask is written, the masks are written into a folder
beside ``--out`` and moved in only when all are done, and ``--out`` may not be the image folder,
so a failing run leaves ``--out`` as it was and never touches a picture. With ``--max-side`` a
large JPEG is decoded at a reduced scale (``core.io.images.read_image``) and its mask scaled back
to the picture's size (nearest neighbour), so memory stays small for huge photos.

With ONNX Runtime (the default) the exported graph is kept in an on-disk cache keyed by the
checkpoint's bytes (:mod:`core.inference.cache`): a later call with the same checkpoint neither
exports nor builds the torch model. ``--no-onnx-cache`` or ``GFN_AUTOLABEL_ONNX_CACHE=off`` turns it off.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

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
    p.add_argument("--runtime", choices=("onnx", "torch"), default="onnx", help="onnx (ONNX Runtime, default) or torch")
    p.add_argument(
        "--no-onnx-cache",
        action="store_true",
        help="export the model again instead of using the on-disk cache of exported graphs "
        "(~/.cache/gfn-autolabel/onnx, or $GFN_AUTOLABEL_ONNX_CACHE; 'off' there disables it too)",
    )
    return p


class _Pictures:
    """The images as ``(H, W, 3) uint8`` arrays, each read when reached (JPEGs at reduced scale)."""

    def __init__(self, paths: Sequence[Path], max_side: int):
        self.paths = list(paths)
        self.max_side = max_side

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[np.ndarray]:
        from core.io.images import read_image

        return (read_image(p, max_side=self.max_side) for p in self.paths)


def _at_image_size(mask: np.ndarray, path: Path) -> np.ndarray:
    """``mask`` scaled (nearest neighbour) to the picture's own size when it was read reduced."""
    import cv2

    from core.io.images import image_size

    h, w = image_size(path)
    return mask if mask.shape == (h, w) else cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def check_paths(images_dir: Path, out: Path, images: Sequence[Path], targets: Sequence[Path]) -> None:
    """Refuse ``--out`` = the image folder, one inside the other, or a mask path that is one of the
    pictures (after resolving links), whatever ``--overwrite`` says."""
    from core.cli import CLIError
    from core.formats.guard import refuse_overwriting_inputs

    real_out, real_images = Path(os.path.realpath(out)), Path(os.path.realpath(images_dir))
    if real_out == real_images:
        raise CLIError(
            f"--out {out} is the --images folder: the masks would be written among (and over) the pictures; "
            "choose another folder"
        )
    if real_images in real_out.parents:
        raise CLIError(f"--out {out} is inside the --images folder {images_dir}; choose a folder outside it")
    if real_out in real_images.parents:
        raise CLIError(f"--images {images_dir} is inside the --out folder {out}; choose an --out folder beside it")
    refuse_overwriting_inputs(targets, images)


def run(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from core.cli import CLIError
    from core.cli.progress import ProgressBars
    from core.inference import WriteBehind
    from core.inference.checkpoint_runner import load_runner
    from core.io.atomic import OutputExistsError, check_folder_target, staged_dir
    from core.io.images import check_images, list_images, write_mask
    from core.training.predict import predict

    if args.max_side is not None and args.max_side < 16:
        raise CLIError(f"--max-side must be at least 16, got {args.max_side}")
    if args.threads:
        torch.set_num_threads(args.threads)
    images = list_images(args.images)
    out = check_folder_target(args.out)
    stems = [p.stem for p in images]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})[:5]
        raise CLIError(f"several images share a stem, so their masks would collide: {dup}")
    targets = [out / f"{s}.png" for s in stems]
    check_paths(Path(args.images), out, images, targets)
    existing = [t for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(
            f"{len(existing)} mask(s) already exist in {out} (e.g. {existing[0].name}); "
            "pass --overwrite to replace them"
        )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-images") as pool:
        checked = pool.submit(check_images, images)  # decoding the pictures overlaps loading the model
        try:
            loaded = load_runner(
                args.model,
                runtime=args.runtime,
                threads=args.threads or None,
                cache=None if args.no_onnx_cache else "default",
            )
        except Exception:
            checked.result()  # a bad picture is reported first, as when checked before the model
            raise
        checked.result()
    log.info(
        "model %s: ONNX cache %s, %s", args.model, loaded.cache, {k: round(v, 3) for k, v in loaded.seconds.items()}
    )
    pictures = images if args.max_side is None else _Pictures(images, args.max_side)
    with staged_dir(out) as tmp, ProgressBars() as bars, WriteBehind() as writer:  # masks written by a thread
        preds = predict(
            loaded.model,
            pictures,
            batch_size=args.batch_size,
            tta_flip=args.tta,
            max_side=args.max_side,
            progress=bars,
            runtime=args.runtime,
            runner=loaded.runner,
        )
        for path, stem, pred in zip(images, stems, preds):
            writer.submit(lambda p=path, s=stem, m=pred.mask: write_mask(tmp / f"{s}.png", _at_image_size(m, p)))
    print(f"wrote {len(targets)} mask(s) to {out} (classes: {', '.join(loaded.class_names)})")
    return 0
