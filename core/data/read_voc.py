"""A PASCAL VOC root as a dataset (``JPEGImages``, ``SegmentationClass``, ``ImageSets``)."""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path

from core.classmap import present_classes
from core.data.checks import build_dataset, check_samples
from core.data.classes import ClassesArg, load_classes
from core.data.dataset import Dataset, Sample
from core.data.voc_layout import (
    JPEG_DIR,
    SEG_DIR,
    check_voc_masks,
    is_voc_root,
    read_voc_mask,
    voc_classes,
    voc_main_labels,
    voc_stems,
)
from core.io.images import IMAGE_EXTENSIONS, ImageReadError

log = logging.getLogger(__name__)


def voc_image_path(root: Path, stem: str) -> Path:
    """``JPEGImages/<stem>.<ext>`` of the first existing extension (``.jpg`` if none exists)."""
    for ext in (".jpg", ".jpeg", ".png", *IMAGE_EXTENSIONS):
        p = root / JPEG_DIR / f"{stem}{ext}"
        if p.exists():
            return p
    return root / JPEG_DIR / f"{stem}.jpg"


def read_voc_dataset(root: str | os.PathLike, *, classes: ClassesArg = None, skip_bad: bool = False) -> Dataset:
    """The images listed in ``ImageSets/Segmentation/*.txt`` (else all of ``JPEGImages``).

    A listed image without its mask is an error (``check_voc_masks``) unless none has one.
    Labels are the classes present in each mask plus those of ``ImageSets/Main/<class>_*.txt``;
    masks keep 255 = ignore. The class map comes from ``labelmap.txt`` (else the 21 VOC classes)
    unless ``classes`` is given (then masks are assumed to use its indices).
    """
    root = Path(root)
    if not is_voc_root(root):
        raise FileNotFoundError(f"{root} is not a VOC root (expected {JPEG_DIR}/ and {SEG_DIR}/ folders)")
    cmap, colors = voc_classes(root)
    given = load_classes(classes)
    if given is not None:
        cmap, colors = given, None
    main = voc_main_labels(root, cmap)
    check_voc_masks(root, skip_bad=skip_bad)
    samples = []
    for stem in voc_stems(root):
        mp = root / SEG_DIR / f"{stem}.png"
        labels = set(main.get(stem, ()))
        fn = None
        if mp.is_file():
            fn = partial(read_voc_mask, mp, colors)
            try:
                found = present_classes(fn())
            except ImageReadError:  # unreadable: reported with the other bad files by check_samples
                found = []
            bad = [i for i in found if i >= cmap.num_classes]
            if bad:
                raise ValueError(f"{mp}: class indices {bad} are not in the class map {list(cmap.names)}")
            labels |= {cmap.names[i] for i in found}
        ordered = tuple(n for n in cmap.foreground if n in labels)
        samples.append(
            Sample(
                stem=stem,
                image_path=voc_image_path(root, stem),
                labels=ordered,
                mask_path=mp if mp.is_file() else None,
                mask_fn=fn,
            )
        )
    return build_dataset(check_samples(samples, skip_bad=skip_bad), cmap, root)
