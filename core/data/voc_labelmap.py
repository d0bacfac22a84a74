"""PASCAL VOC colours and the ``labelmap.txt`` file (CVAT / Datumaro style).

``labelmap.txt`` holds one line per class, ``name:r,g,b:parts:actions`` (we write empty parts and
actions: ``horse:128,0,0::``); lines starting with ``#`` are comments. Index 255 ("ignore", the
VOC object borders) is drawn in ``(224, 224, 192)``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from core.classmap import BACKGROUND, IGNORE_INDEX, ClassMap
from core.io.atomic import write_text_atomic

log = logging.getLogger(__name__)

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
"""The 21 PASCAL VOC 2012 classes, used for a VOC root that has no ``labelmap.txt``."""

LABELMAP = "labelmap.txt"


def voc_colormap(n: int = 256) -> np.ndarray:
    """The standard VOC colour map, ``(n, 3) uint8`` (index 0 black, 1 (128,0,0), ..., 255 (224,224,192))."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


IGNORE_COLOR = tuple(int(v) for v in voc_colormap()[IGNORE_INDEX])


def palette_for(colors: np.ndarray) -> list[int]:
    """A flat 768-entry PNG palette: ``colors`` for the classes, VOC colours elsewhere (255 = ignore)."""
    pal = voc_colormap()
    pal[: len(colors)] = colors
    pal[IGNORE_INDEX] = IGNORE_COLOR
    return [int(v) for v in pal.ravel()]


def write_labelmap(path: str | os.PathLike, classmap: ClassMap, colors: np.ndarray, *, overwrite: bool = True) -> Path:
    """Write ``labelmap.txt``: ``name:r,g,b::`` per class, in class-index order."""
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{','.join(str(int(v)) for v in colors[i])}::" for i, name in enumerate(classmap.names)]
    return write_text_atomic(path, "\n".join(lines) + "\n", overwrite=overwrite)


def read_labelmap(path: str | os.PathLike) -> tuple[ClassMap, np.ndarray]:
    """``(class map, colours (K, 3) uint8)`` from a ``labelmap.txt``.

    Background is index 0 wherever it is listed (added in black when missing); the other classes
    keep the file's order. Raises ``ValueError`` naming the file and line for a malformed line.
    """
    path = Path(path)
    entries: list[tuple[str, tuple[int, int, int]]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        try:
            rgb = tuple(int(v) for v in parts[1].split(","))
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb) or not parts[0].strip():
                raise ValueError
        except (IndexError, ValueError):
            raise ValueError(f"{path}, line {lineno}: expected 'name:r,g,b::', got {line!r}") from None
        entries.append((parts[0].strip(), rgb))
    if not entries:
        raise ValueError(f"{path}: no classes (expected lines 'name:r,g,b::')")
    bg = [e for e in entries if e[0] == BACKGROUND] or [(BACKGROUND, (0, 0, 0))]
    ordered = bg[:1] + [e for e in entries if e[0] != BACKGROUND]
    try:
        cmap = ClassMap(tuple(n for n, _ in ordered))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    colors = np.array([c for _, c in ordered], dtype=np.uint8)
    codes = [tuple(c) for c in colors.tolist()]
    if len(set(codes)) != len(codes):
        raise ValueError(f"{path}: two classes share a colour; every class needs its own colour")
    return cmap, colors


def default_colors(classmap: ClassMap) -> np.ndarray:
    """VOC colours for a class map, ``(K, 3) uint8``."""
    return voc_colormap()[: classmap.num_classes].copy()
