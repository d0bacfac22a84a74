"""``load_dataset``: read any supported dataset layout, detecting which one it is.

Layouts (checked in this order for a folder ``src``):

* ``voc``: a PASCAL VOC root (``JPEGImages/`` + ``SegmentationClass/``, ``ImageSets/``).
* ``csv``: a ``filename,label`` CSV (``src`` itself, the ``labels`` argument, ``src/labels.csv``
  or the only ``*.csv`` in ``src``); images beside it or in ``images/``, masks in ``masks/``.
* ``coco``: a COCO JSON (``src`` itself, ``src/annotations.json``, ``src/instances*.json``,
  ``src/annotations/instances*.json``, or the only ``*coco*.json``).
* ``class_folders``: one sub-folder of images per class.
* ``image_folder``: images in ``src/images/`` or directly in ``src`` (all labelled ``label``, or
  by the ``labels`` mapping); masks in ``masks/``.

Every reader gives ONE error listing every missing or unreadable image (``ImageReadError``),
or drops them with a warning each when ``skip_bad=True``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.data.classes import ClassesArg, load_classes
from core.data.dataset import Dataset
from core.data.read_coco import read_coco_dataset
from core.data.read_csv import read_csv_dataset
from core.data.read_folders import class_folders, read_class_folders, read_image_folder
from core.data.read_voc import read_voc_dataset
from core.data.voc_layout import JPEG_DIR, is_voc_root
from core.io.images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

LAYOUTS = ("voc", "csv", "coco", "class_folders", "image_folder")

__all__ = [
    "LAYOUTS",
    "detect_layout",
    "load_dataset",
    "read_class_folders",
    "read_coco_dataset",
    "read_csv_dataset",
    "read_image_folder",
    "read_voc_dataset",
]

LabelsArg = str | os.PathLike | Mapping[str, Sequence[str] | str] | None


def _find_csv(folder: Path) -> Path | None:
    if (folder / "labels.csv").is_file():
        return folder / "labels.csv"
    found = sorted(folder.glob("*.csv"))
    return found[0] if len(found) == 1 else None


def _find_coco(folder: Path) -> Path | None:
    cands = [
        folder / "annotations.json",
        *sorted(folder.glob("instances*.json")),
        *sorted((folder / "annotations").glob("instances*.json")),
    ]
    for c in cands:
        if c.is_file():
            return c
    found = sorted(folder.glob("*coco*.json"))
    return found[0] if len(found) == 1 else None


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def detect_layout(src: str | os.PathLike, *, labels: LabelsArg = None) -> tuple[str, Path]:
    """``(layout, path)`` for ``src``: the layout name (see ``LAYOUTS``) and the file or folder to read."""
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"dataset {src} does not exist")
    if src.is_file():
        if src.suffix.lower() == ".csv":
            return "csv", src
        if src.suffix.lower() == ".json":
            return "coco", src
        raise ValueError(f"{src}: a dataset file must be a labels .csv or a COCO .json, not {src.suffix!r}")
    if is_voc_root(src) and (src / JPEG_DIR).is_dir():
        return "voc", src
    devkit = sorted((src / "VOCdevkit").glob("VOC[0-9][0-9][0-9][0-9]"))  # torchvision's layout
    if devkit and (devkit[-1] / JPEG_DIR).is_dir():
        return "voc", devkit[-1]
    if isinstance(labels, (str, os.PathLike)):
        return "csv", Path(labels)
    if labels is None:
        csv_file = _find_csv(src)
        if csv_file is not None:
            return "csv", csv_file
    coco = _find_coco(src)
    if coco is not None:
        return "coco", coco
    if not _has_images(src) and not (src / "images").is_dir() and class_folders(src):
        return "class_folders", src
    if _has_images(src / "images"):
        return "image_folder", src / "images"
    if _has_images(src):
        return "image_folder", src
    raise ValueError(
        f"{src}: no dataset found; expected a folder of images with labels.csv (filename,label), one "
        "sub-folder per class, a COCO JSON, or a VOC root (JPEGImages/, SegmentationClass/, ImageSets/)"
    )


def load_dataset(
    src: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    labels: LabelsArg = None,
    masks: str | os.PathLike | None = None,
    skip_bad: bool = False,
    label: str | None = None,
    classes: ClassesArg = None,
) -> Dataset:
    """Read a dataset from ``src``, detecting its layout (module docstring).

    ``images``: the image folder when it is not where the layout puts it. ``labels``: a
    ``filename,label`` CSV, or a mapping from file name or stem to label(s), for a folder of
    images. ``masks``: a folder of ground-truth ``<stem>.png`` class-index masks (CSV, folder
    layouts). ``label``: one class name for every image of an unlabelled folder (e.g. ``"horse"``).
    ``classes``: a ``ClassMap`` or ``classes.json`` path to use instead of the detected one.
    ``skip_bad``: drop unreadable images with a warning instead of raising.
    """
    layout, path = detect_layout(src, labels=labels)
    log.info("reading %s as %s", path, layout)
    if layout == "voc":
        return read_voc_dataset(path, classes=classes, skip_bad=skip_bad)
    if layout == "csv":
        return read_csv_dataset(path, images, masks=masks, classes=classes, skip_bad=skip_bad)
    if layout == "coco":
        return read_coco_dataset(path, images, classes=classes, skip_bad=skip_bad)
    if layout == "class_folders":
        return read_class_folders(path, masks=masks, classes=classes, skip_bad=skip_bad)
    folder = Path(images) if images is not None else path
    return read_image_folder(folder, load_classes(classes), label, masks, labels=labels, skip_bad=skip_bad)
