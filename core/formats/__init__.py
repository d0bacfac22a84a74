"""Mask formats: COCO JSON, PASCAL VOC, plain PNG folders. See docs/FORMATS.md.

``export_masks`` writes ``{stem: mask}`` in any of them; ``load_masks`` reads any of them back,
detecting which one it is given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path

import numpy as np

from core.classmap import ClassMap
from core.data.dataset import Dataset
from core.data.voc_layout import SEG_DIR, is_voc_root
from core.formats.coco import INSTANCES, ProbsLike, read_coco_masks, write_coco
from core.formats.png import png_files, read_png_masks, write_png_masks
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike
from core.formats.voc import DEFAULT_VAL_FRACTION, find_voc_root, read_voc_masks, write_voc
from core.io.images import IMAGE_EXTENSIONS, image_size
from core.progress import Progress

log = logging.getLogger(__name__)

FORMATS = ("coco", "voc", "png")

__all__ = ["FORMATS", "INSTANCES", "LazyMasks", "detect_mask_source", "export_masks", "load_masks"]


def export_masks(
    masks: Mapping[str, MaskLike],
    dataset: Dataset | ClassMap,
    dst: str | os.PathLike,
    *,
    to: str,
    polygons: bool = False,
    instances: str = "class",
    probs: Mapping[str, ProbsLike] | None = None,
    image_scores: Mapping[str, float] | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write ``masks`` (``{stem: (H, W) uint8 class indices or PNG path}``) as ``to`` in ``dst``.

    ``dataset``: the images and the class map. ``to="png"`` and ``to="coco"`` also accept a bare
    ``ClassMap`` (COCO file names are then ``<stem>.jpg``); ``to="voc"`` needs the images.
    ``dst``: the JSON file for COCO (a folder gets ``annotations.json``), the root folder for VOC
    (written under ``dst/VOCdevkit/VOC2012``, as torchvision reads it), the mask folder for PNG.
    COCO only: ``polygons`` instead of RLE; ``instances`` ``"class"`` (one annotation per image and
    class, default) or ``"parts"`` (one per connected part); ``probs`` / ``image_scores`` give each
    annotation's ``score`` (``core.formats.coco.mask_annotations``). VOC only: ``val_fraction`` of
    the images in ``val.txt``. Returns what was written (the JSON file, the VOC folder, the PNG
    folder). Raises ``OutputExistsError`` unless ``overwrite``.
    """
    if to not in FORMATS:
        raise ValueError(f"unknown mask format {to!r}; choose one of {list(FORMATS)}")
    if not masks:
        raise ValueError("no masks to write")
    if polygons and to != "coco":
        raise ValueError(f"polygons apply to COCO output only, not to {to!r}")
    if instances != "class" and to != "coco":
        raise ValueError(f"instances={instances!r} applies to COCO output only, not to {to!r}")
    if to == "coco":
        return write_coco(
            masks,
            dataset,
            dst,
            polygons=polygons,
            instances=instances,
            probs=probs,
            image_scores=image_scores,
            overwrite=overwrite,
            progress=progress,
        )
    if to == "voc":
        return write_voc(
            masks,
            dataset,  # type: ignore[arg-type]
            dst,
            val_fraction=val_fraction,
            overwrite=overwrite,
            progress=progress,
        )
    return write_png_masks(masks, dataset, dst, overwrite=overwrite, progress=progress)


def detect_mask_source(src: str | os.PathLike) -> tuple[str, Path]:
    """``(format, path)`` for a mask source: a COCO JSON (or a folder holding ``annotations.json``),
    a VOC root (``SegmentationClass/``, also found as ``VOCdevkit/VOC<year>/`` inside ``src``), or a
    PNG folder (also found as ``masks/`` or ``final/masks/`` inside ``src``, e.g. a run folder).
    Raises ``ValueError`` saying what was expected.
    """
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist (expected a COCO JSON, a VOC root or a folder of PNG masks)")
    if src.is_file():
        if src.suffix.lower() == ".json":
            return "coco", src
        raise ValueError(f"{src}: a mask source must be a COCO .json file or a folder, not a {src.suffix} file")
    if (src / SEG_DIR).is_dir() and is_voc_root(src):
        return "voc", src
    voc = find_voc_root(src)  # root/VOCdevkit/VOC2012 (torchvision's layout)
    if voc is not None:
        return "voc", voc
    if png_files(src):
        return "png", src
    for sub in (src / "masks", src / "final" / "masks"):
        if sub.is_dir() and png_files(sub):
            log.info("reading PNG masks from %s", sub)
            return "png", sub
    if (src / "annotations.json").is_file():
        return "coco", src / "annotations.json"
    raise ValueError(f"{src}: no masks found (expected PNG masks, a VOC root with {SEG_DIR}/, or annotations.json)")


def _size_checked(masks: LazyMasks, images: Path) -> LazyMasks:
    """The same masks, each checked on load against ``<images>/<stem>.<ext>`` when that file exists."""
    files = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}

    def load(stem: str) -> np.ndarray:
        mask = masks[stem]
        if stem in files:
            h, w = image_size(files[stem])
            if mask.shape != (h, w):
                raise ValueError(
                    f"mask {masks.sources.get(stem, stem)} is {mask.shape[1]}x{mask.shape[0]} "
                    f"(WxH) but image {files[stem]} is {w}x{h}"
                )
        return mask

    return LazyMasks({s: partial(load, s) for s in masks}, masks.sources, masks.inputs)


def load_masks(src: str | os.PathLike, *, images: str | os.PathLike | None = None) -> tuple[LazyMasks, ClassMap | None]:
    """Read masks from any supported source: ``({stem: (H, W) uint8 mask}, class map or None)``.

    The mapping loads each mask when it is accessed (``dict(...)`` loads all). ``images``: a
    folder of the pictures; when given, each mask is checked against its picture's size.
    The class map is ``None`` when the source does not say (a PNG folder without ``classes.json``).
    """
    kind, path = detect_mask_source(src)
    cmap: ClassMap | None
    if kind == "coco":
        masks, cmap = read_coco_masks(path)
    elif kind == "voc":
        masks, cmap = read_voc_masks(path)
    else:
        masks, cmap = read_png_masks(path)
    log.info("%s: %d %s masks", src, len(masks), kind)
    if images is not None:
        images = Path(images)
        if not images.is_dir():
            raise FileNotFoundError(f"image folder {images} does not exist")
        masks = _size_checked(masks, images)
    return masks, cmap
