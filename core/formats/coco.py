"""COCO segmentation JSON: masks out (RLE by default, polygons on request) and back in.

Written file: ``images`` (``id`` 1..N, ``file_name`` relative to the images' common folder,
``width``, ``height``), ``categories`` (``id`` = class index 1..K-1, ``name``), and
``annotations``: by default ONE annotation per (image, class) covering every part of that class
(``instances="class"``, as FiftyOne's and Label Studio's converters write semantic masks); with
``instances="parts"`` one per connected part (8-connectivity). ``category_id`` = class index,
``segmentation`` as compressed RLE (``counts`` a string, encoded by ``pycocotools``) or, with
``polygons=True``, as polygons (several for a class in several parts; holes kept by slits: see
``core.data.polygons``), plus ``area``, ``bbox`` (``[x, y, w, h]``), ``iscrowd`` = 0 and, when the
caller has them, ``score`` in [0, 1]: the mean probability of the annotation's class over its
pixels (``probs``), else the image's reliability (``image_scores``). Image-level labels are read
back as the categories of each image's annotations.

COCO has no "ignore" label: pixels of value 255 are written as background (with a warning).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.classmap import IGNORE_INDEX, ClassMap
from core.data.coco_file import parse_coco
from core.data.dataset import Dataset
from core.data.polygons import mask_to_polygons
from core.formats.guard import input_files, refuse_overwriting_inputs
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike, as_mask
from core.io.atomic import check_can_write, write_text_atomic
from core.io.images import ImageReadError, image_size
from core.progress import Progress

log = logging.getLogger(__name__)

DEFAULT_NAME = "annotations.json"
INSTANCES = ("class", "parts")
"""``instances``: one annotation per (image, class), or one per connected part of a class."""

ProbsLike = np.ndarray | Callable[[], np.ndarray]
"""``(K, H, W) float`` class probabilities of one image (K = the class map's size), or a loader of them."""


def coco_path(dst: str | os.PathLike) -> Path:
    """``dst`` itself when it ends in ``.json``, else ``dst/annotations.json``."""
    dst = Path(dst)
    return dst if dst.suffix.lower() == ".json" else dst / DEFAULT_NAME


def _check_instances(instances: str) -> None:
    if instances not in INSTANCES:
        raise ValueError(f"instances must be one of {list(INSTANCES)}, got {instances!r}")


def _regions(mask: np.ndarray, cls: int, instances: str) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """``[(binary (H, W) uint8 region, (x, y, w, h) box)]`` of class ``cls``: the whole class, or each part."""
    sel = (mask == cls).astype(np.uint8)
    if instances == "class":
        ys, xs = np.nonzero(sel)
        x, y = int(xs.min()), int(ys.min())
        return [(sel, (x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1))]
    n, parts, stats, _ = cv2.connectedComponentsWithStats(sel, connectivity=8)
    out = []
    for k in range(1, n):
        x, y, w, h, _area = (int(v) for v in stats[k])
        part = np.zeros(mask.shape, dtype=np.uint8)
        part[y : y + h, x : x + w] = parts[y : y + h, x : x + w] == k
        out.append((part, (x, y, w, h)))
    return out


def mask_annotations(
    mask: np.ndarray,
    image_id: int,
    first_id: int,
    *,
    polygons: bool = False,
    tolerance: float = 0.0,
    instances: str = "class",
    probs: np.ndarray | None = None,
    score: float | None = None,
) -> list[dict]:
    """COCO annotations for one ``(H, W) uint8`` class-index mask.

    ``instances="class"``: one annotation per class present (all its parts in one RLE, or several
    polygons); ``"parts"``: one per connected part (8-connectivity). Ids count up from ``first_id``.
    Class 0 (background) and 255 (ignore) get no annotation. ``probs``: ``(K, H, W)`` probabilities
    in [0, 1]; each annotation's ``score`` is their mean for its class over its pixels. Without
    them ``score`` (the image's reliability) is used; with neither, no ``score`` is written.
    """
    from pycocotools import mask as mask_utils

    _check_instances(instances)
    if probs is not None and (probs.ndim != 3 or probs.shape[1:] != mask.shape):
        raise ValueError(f"probs must be (K, {mask.shape[0]}, {mask.shape[1]}), got {probs.shape}")
    anns: list[dict] = []
    for cls in np.flatnonzero(np.bincount(mask.ravel(), minlength=256)):
        if cls in (0, IGNORE_INDEX):
            continue
        for region, (x, y, w, h) in _regions(mask, int(cls), instances):
            rle = mask_utils.encode(np.asfortranarray(region))
            segmentation: list[list[float]] | dict[str, Any]
            if polygons:
                segmentation = mask_to_polygons(region[y : y + h, x : x + w], tolerance=tolerance)
                segmentation = [[v + (x if i % 2 == 0 else y) for i, v in enumerate(p)] for p in segmentation]
            else:
                segmentation = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
            ann: dict[str, Any] = {
                "id": first_id + len(anns),
                "image_id": image_id,
                "category_id": int(cls),
                "segmentation": segmentation,
                "area": int(mask_utils.area(rle)),
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "iscrowd": 0,
            }
            if probs is not None and cls < probs.shape[0]:
                ann["score"] = round(float(probs[cls][region.astype(bool)].mean()), 4)
            elif score is not None:
                ann["score"] = round(float(score), 4)
            anns.append(ann)
    return anns


def _file_names(dataset: Dataset | None, stems: list[str]) -> dict[str, str]:
    """``file_name`` per stem: relative to the images' common folder (``<stem>.jpg`` without a dataset)."""
    if dataset is None:
        return {s: f"{s}.jpg" for s in stems}
    by_stem = dataset.by_stem()
    paths = [Path(by_stem[s].image_path).absolute() for s in stems]
    root = Path(os.path.commonpath([p.parent for p in paths])) if paths else Path(".")
    return {s: p.relative_to(root).as_posix() for s, p in zip(stems, paths)}


def ordered_stems(masks: Mapping[str, MaskLike], dataset: Dataset | None) -> list[str]:
    """The masks' stems in dataset order; ``ValueError`` listing masks that have no image."""
    if dataset is None:
        return list(masks)
    known = set(dataset.stems)
    missing = [s for s in masks if s not in known]
    if missing:
        raise ValueError(
            f"{len(missing)} mask(s) have no image in the dataset: {missing[:10]}{' ...' if len(missing) > 10 else ''}"
        )
    return [s for s in dataset.stems if s in masks]


def write_coco(
    masks: Mapping[str, MaskLike],
    dataset: Dataset | ClassMap,
    dst: str | os.PathLike,
    *,
    polygons: bool = False,
    tolerance: float = 0.0,
    instances: str = "class",
    probs: Mapping[str, ProbsLike] | None = None,
    image_scores: Mapping[str, float] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write ``masks`` (``{stem: (H, W) uint8 mask or PNG path}``) as one COCO JSON; returns its path.

    ``dataset`` gives the class map and the image files (for ``file_name`` and a size check);
    a bare ``ClassMap`` is accepted, then ``file_name`` is ``<stem>.jpg`` and sizes come from the
    masks. ``instances``: ``"class"`` (one annotation per image and class) or ``"parts"``.
    ``probs`` / ``image_scores``: per stem, what each annotation's ``score`` is taken from (see
    ``mask_annotations``). Every mask is checked and encoded before the file is written (atomically).
    Raises ``OutputExistsError`` if the file exists and not ``overwrite``.
    """
    _check_instances(instances)
    out = check_can_write(coco_path(dst), overwrite)
    refuse_overwriting_inputs([out], input_files(masks, dataset))
    ds = dataset if isinstance(dataset, Dataset) else None
    cmap = dataset.classmap if isinstance(dataset, Dataset) else dataset
    stems = ordered_stems(masks, ds)
    names = _file_names(ds, stems)
    by_stem = ds.by_stem() if ds is not None else {}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    ignored, unchecked = 0, 0
    bad: dict[str, str] = {}
    for n, stem in enumerate(stems, start=1):
        mask = as_mask(masks[stem], stem, cmap)
        h, w = mask.shape
        if stem in by_stem:
            try:
                ih, iw = image_size(by_stem[stem].image_path)
                if (ih, iw) != (h, w):
                    bad[stem] = f"mask is {w}x{h} (WxH) but image {by_stem[stem].image_path} is {iw}x{ih}"
            except ImageReadError:
                unchecked += 1
        ignored += int((mask == IGNORE_INDEX).sum())
        images.append({"id": n, "file_name": names[stem], "width": int(w), "height": int(h)})
        p = (probs or {}).get(stem)
        annotations += mask_annotations(
            mask,
            n,
            len(annotations) + 1,
            polygons=polygons,
            tolerance=tolerance,
            instances=instances,
            probs=p() if callable(p) else p,
            score=(image_scores or {}).get(stem),
        )
        if progress is not None:
            progress("coco", n, len(stems))
    if bad:
        lines = "\n".join(f"  {s}: {why}" for s, why in bad.items())
        raise ValueError(f"{len(bad)} mask(s) do not match their image's size:\n{lines}")
    if unchecked:
        log.warning("%d image file(s) not found: COCO file names and sizes taken from the masks", unchecked)
    if ignored:
        log.warning("COCO has no 'ignore' label: %d pixel(s) of value 255 written as background", ignored)
    doc = {
        "info": {"description": "masks written by gfn-autolabel", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": ""} for i, n in enumerate(cmap.names) if i > 0],
    }
    write_text_atomic(out, json.dumps(doc), overwrite=overwrite)
    log.info("wrote %d images, %d annotations to %s", len(images), len(annotations), out)
    return out


def read_coco_masks(path: str | os.PathLike) -> tuple[LazyMasks, ClassMap]:
    """``({stem: (H, W) uint8 mask}, class map)`` from a COCO JSON; masks decode on access.

    Every image of the file gets a mask (all background when it has no segmentation).
    """
    coco = parse_coco(path)
    loaders, sources = {}, {}
    for stem, image in zip(coco.stems(), coco.images):
        loaders[stem] = lambda im=image: coco.mask(im)
        sources[stem] = f"{coco.path}:{image.file_name}"
    return LazyMasks(loaders, sources, (coco.path,)), coco.classmap
