"""Reading a COCO JSON into a checked model: class map, images, their labels and masks.

Categories become the class map: ids ``1..K`` are the class indices as they are (that is what
we write); other id sets are renumbered ``1..K`` in ascending id order. A category called
``background`` maps to index 0. An image's labels are the categories of its annotations; its
mask is painted from the annotations that carry a ``segmentation`` (polygons, RLE or
uncompressed RLE), in file order. An image without any annotation counts as all background
when the file holds segmentations at all.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.classmap import BACKGROUND, ClassMap
from core.data.coco_segmentation import decode_segmentation, segmentation_problem
from core.data.stems import unique_stems
from core.io.decode import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CocoImage:
    """One ``images`` entry with its annotations (each a dict as in the file)."""

    id: int
    file_name: str
    width: int
    height: int
    annotations: tuple[dict, ...]


@dataclass(frozen=True)
class CocoFile:
    """A parsed, checked COCO file. ``category_index`` maps category id -> class index."""

    path: Path
    classmap: ClassMap
    category_index: dict[int, int]
    images: tuple[CocoImage, ...]
    has_segmentation: bool

    def stems(self) -> list[str]:
        """Stems of ``images`` in order (see ``core.data.stems``)."""
        return unique_stems([im.file_name for im in self.images])

    def labels(self, image: CocoImage) -> tuple[str, ...]:
        """Foreground class names of the image's annotations, in class-map order."""
        idx = sorted({self.category_index[a["category_id"]] for a in image.annotations} - {0})
        return tuple(self.classmap.names[i] for i in idx)

    def has_mask(self, image: CocoImage) -> bool:
        if any(_segmentation(a) for a in image.annotations):
            return True
        return not image.annotations and self.has_segmentation

    def mask(self, image: CocoImage) -> np.ndarray:
        """The image's ``(height, width) uint8`` class-index mask (0 where nothing is annotated)."""
        out = np.zeros((image.height, image.width), dtype=np.uint8)
        for ann in image.annotations:
            seg = _segmentation(ann)
            if seg:
                out[decode_segmentation(seg, image.height, image.width, where=self._where(ann))] = self.category_index[
                    ann["category_id"]
                ]
        return out

    def _where(self, ann: dict) -> str:
        return f"{self.path}: annotation {ann.get('id', '?')}"


def _segmentation(ann: dict):
    seg = ann.get("segmentation")
    return seg if seg else None


def _check_segmentation(seg, image: dict, where: str) -> None:
    problem = segmentation_problem(seg, image["height"], image["width"])
    if problem:
        raise ValueError(f"{where}: {problem} (image {image['file_name']!r})")


def coco_classmap(categories: list, path: Path) -> tuple[ClassMap, dict[int, int]]:
    """The class map and category id -> class index for COCO ``categories``."""
    cats = []
    for c in categories:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise ValueError(f"{path}: each category needs an integer 'id' and a string 'name', got {c!r}")
        cats.append((c["id"], c["name"]))
    ids = [i for i, _ in cats]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: repeated category ids {sorted({i for i in ids if ids.count(i) > 1})}")
    index: dict[int, int] = {i: 0 for i, n in cats if n == BACKGROUND}
    fg = sorted((i, n) for i, n in cats if n != BACKGROUND)
    if [i for i, _ in fg] != list(range(1, len(fg) + 1)):
        log.info("%s: category ids %s renumbered as class indices 1..%d", path, [i for i, _ in fg], len(fg))
    index.update({i: k for k, (i, _) in enumerate(fg, start=1)})
    try:
        cmap = ClassMap.from_names([n for _, n in fg])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if cmap.num_classes != len(fg) + 1:
        raise ValueError(f"{path}: category names must be unique, got {[n for _, n in fg]}")
    return cmap, index


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"COCO file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 JSON file ({exc})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be a COCO file") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("categories"), list)
    ):
        raise ValueError(f"{path}: not a COCO file (expected an object with 'images' and 'categories' lists)")
    if not isinstance(data.get("annotations"), list):
        raise ValueError(
            f"{path}: no 'annotations' list, so no masks or labels; write \"annotations\": [] if the "
            "images are really unannotated"
        )
    return data


def parse_coco(path: str | os.PathLike) -> CocoFile:
    """Read and check a COCO JSON; raises ``ValueError`` naming the file and the bad entry."""
    path = Path(path)
    data = _load_json(path)
    cmap, cat_index = coco_classmap(data["categories"], path)
    images: dict[int, dict] = {}
    for im in data["images"]:
        ok = (
            isinstance(im, dict)
            and isinstance(im.get("id"), int)
            and isinstance(im.get("file_name"), str)
            and all(isinstance(im.get(k), int) and im[k] > 0 for k in ("width", "height"))
        )
        if not ok:
            raise ValueError(f"{path}: each image needs integer 'id', 'width', 'height' and a 'file_name', got {im!r}")
        if im["width"] * im["height"] > MAX_IMAGE_PIXELS:
            raise ValueError(
                f"{path}: image {im['id']} ({im['file_name']!r}) is too large: {im['width']} x {im['height']} "
                f"pixels, limit {MAX_IMAGE_PIXELS}"
            )
        if im["id"] in images:
            raise ValueError(f"{path}: image id {im['id']} is used twice")
        images[im["id"]] = im
    anns: dict[int, list[dict]] = {i: [] for i in images}
    has_seg = False
    for ann in data["annotations"]:
        where = f"{path}: annotation {ann.get('id', '?') if isinstance(ann, dict) else ann!r}"
        if not isinstance(ann, dict):
            raise ValueError(f"{where}: expected an object")
        if ann.get("image_id") not in images:
            raise ValueError(f"{where}: unknown image_id {ann.get('image_id')!r}")
        if ann.get("category_id") not in cat_index:
            raise ValueError(
                f"{where}: unknown category_id {ann.get('category_id')!r}; categories are {sorted(cat_index)}"
            )
        _check_segmentation(ann.get("segmentation"), images[ann["image_id"]], where)
        has_seg = has_seg or bool(ann.get("segmentation"))
        anns[ann["image_id"]].append(ann)
    parsed = tuple(
        CocoImage(id=i, file_name=im["file_name"], width=im["width"], height=im["height"], annotations=tuple(anns[i]))
        for i, im in images.items()
    )
    return CocoFile(path=path, classmap=cmap, category_index=cat_index, images=parsed, has_segmentation=has_seg)
