"""A COCO JSON as a dataset: categories -> class map, annotations -> labels, segmentations -> masks."""

from __future__ import annotations

import logging
import os
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from core.classmap import remap_table
from core.data.checks import build_dataset, check_samples
from core.data.classes import ClassesArg, load_classes
from core.data.coco_file import CocoFile, CocoImage, parse_coco
from core.data.dataset import Dataset, Sample

log = logging.getLogger(__name__)


def coco_image_root(coco: CocoFile, images: str | os.PathLike | None) -> Path:
    """The folder ``file_name`` is relative to: ``images``, else ``images/`` beside the JSON, else its folder."""
    if images is not None:
        root = Path(images)
        if not root.is_dir():
            raise FileNotFoundError(f"image folder {root} (for {coco.path}) does not exist")
        return root
    names = [im.file_name for im in coco.images[:20]]
    for root in (coco.path.parent / "images", coco.path.parent, coco.path.parent.parent / "images"):
        if root.is_dir() and any((root / n).exists() for n in names):
            return root
    return coco.path.parent


def coco_image_path(coco: CocoFile, image: CocoImage, root: Path) -> Path:
    """``root / file_name``; ``ValueError`` when ``file_name`` is absolute or climbs out with ``..``.

    A COCO file must not make us read pictures outside its images folder.
    """
    name = image.file_name
    win = PureWindowsPath(name)  # splits on both separators and sees drive letters
    if not name or PurePosixPath(name).is_absolute() or win.anchor or ".." in win.parts:
        raise ValueError(
            f"{coco.path}: image {image.id} has file_name {name!r}; it must be a path inside the images "
            f"folder {root} (relative, without '..')"
        )
    return root / name


def read_coco_dataset(
    json_path: str | os.PathLike,
    images: str | os.PathLike | None = None,
    *,
    classes: ClassesArg = None,
    skip_bad: bool = False,
) -> Dataset:
    """Images of a COCO JSON with their labels and, where segmentations exist, masks.

    ``images``: the folder ``file_name`` is relative to (default: ``images/`` beside the JSON,
    else the JSON's folder). Masks decode lazily (``Sample.mask_fn``). ``classes``: a class map
    to use instead of the categories; it must hold every category name (masks are re-indexed).
    """
    coco = parse_coco(json_path)
    root = coco_image_root(coco, images)
    cmap = coco.classmap
    given = load_classes(classes)
    lut = None
    if given is not None and given != cmap:
        try:
            lut = remap_table(cmap, given)
        except ValueError as exc:
            raise ValueError(f"{coco.path}: {exc}") from None
        cmap = given

    def mask_fn(im: CocoImage) -> np.ndarray:
        m = coco.mask(im)
        return m if lut is None else lut[m]

    samples, sizes = [], {}
    for stem, im in zip(coco.stems(), coco.images):
        has = coco.has_mask(im)
        samples.append(
            Sample(
                stem=stem,
                image_path=coco_image_path(coco, im, root),
                labels=coco.labels(im),
                mask_fn=partial(mask_fn, im) if has else None,
            )
        )
        sizes[stem] = (im.height, im.width)
    return build_dataset(check_samples(samples, skip_bad=skip_bad, mask_sizes=sizes), cmap, coco.path)
