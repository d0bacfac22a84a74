"""A PASCAL VOC root as read: its folders, its image list, its class map and its class masks.

Layout::

    root/JPEGImages/<stem>.jpg                  the pictures
    root/SegmentationClass/<stem>.png           class masks: palette, grey or RGB PNGs
    root/ImageSets/Segmentation/<subset>.txt    the stems, one per line
    root/ImageSets/Main/<class>_<subset>.txt    image-level labels: "<stem>  1" (present) / "<stem> -1"
    root/labelmap.txt                           "name:r,g,b::" per class (see ``voc_labelmap``)

255 is "ignore" and is kept as 255. Palette PNGs are mapped to classes through their colours when
a ``labelmap.txt`` gives them (so CVAT exports with any class order work), RGB masks always
through colours; a root without ``labelmap.txt`` uses the 21 VOC classes. Shared by the dataset
reader (``read_voc``) and the VOC mask format, which also writes this layout.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.classmap import IGNORE_INDEX, ClassMap
from core.data.voc_labelmap import IGNORE_COLOR, LABELMAP, VOC_CLASSES, read_labelmap
from core.io.images import IMAGE_EXTENSIONS, ImageReadError

log = logging.getLogger(__name__)

JPEG_DIR, SEG_DIR, SETS_DIR = "JPEGImages", "SegmentationClass", "ImageSets"


def is_voc_root(path: str | os.PathLike) -> bool:
    """A folder holding ``JPEGImages/`` or ``SegmentationClass/``."""
    path = Path(path)
    return path.is_dir() and ((path / JPEG_DIR).is_dir() or (path / SEG_DIR).is_dir())


def voc_classes(root: str | os.PathLike) -> tuple[ClassMap, np.ndarray | None]:
    """``(class map, colours or None)``: from ``labelmap.txt``, else the VOC classes (indices as is)."""
    lm = Path(root) / LABELMAP
    if lm.is_file():
        return read_labelmap(lm)
    log.info("%s: no %s, assuming the 21 PASCAL VOC classes", root, LABELMAP)
    return ClassMap(VOC_CLASSES), None


def _codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _colour_lut(colors: np.ndarray) -> dict[int, int]:
    lut = {int(c): i for i, c in enumerate(_codes(colors))}
    lut.setdefault(int(_codes(np.array(IGNORE_COLOR))), IGNORE_INDEX)
    return lut


def read_voc_mask(path: str | os.PathLike, colors: np.ndarray | None = None) -> np.ndarray:
    """One VOC mask as ``(H, W) uint8`` class indices (255 = ignore kept).

    ``colors``: ``(K, 3)`` class colours from ``labelmap.txt``; ``None`` takes palette indices as
    class indices. Raises ``ValueError`` naming the file for a colour that is no class's.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
            palette = img.getpalette() if mode == "P" else None
    except FileNotFoundError:
        raise ImageReadError({str(path): "mask file not found"}) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError({str(path): f"not a readable mask ({exc})"}) from None
    if mode in ("L", "1") or (mode == "P" and colors is None):
        return np.array(arr, dtype=np.uint8)
    lut = _colour_lut(colors) if colors is not None else {int(_codes(np.array(IGNORE_COLOR))): IGNORE_INDEX}
    if mode == "P" and colors is not None:  # (without colours: returned above)
        pal = np.zeros((256, 3), dtype=np.uint8)
        flat = np.array(palette or [], dtype=np.uint8)[:768]
        pal.reshape(-1)[: len(flat)] = flat
        used = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
        table = np.arange(256, dtype=np.uint8)
        unmatched = []
        for u in used:
            if u == IGNORE_INDEX:
                continue
            cls = lut.get(int(_codes(pal[u])))
            if cls is None:
                unmatched.append(int(u))
            else:
                table[u] = cls
        if unmatched and max(unmatched) >= len(colors):
            raise ValueError(f"{path}: palette colours of indices {unmatched} are not classes of {LABELMAP}")
        return table[arr]
    if mode in ("RGB", "RGBA"):
        codes = _codes(arr[..., :3])
        uniq, inv = np.unique(codes, return_inverse=True)
        unknown = [u for u in uniq.tolist() if u not in lut]
        if unknown:
            shown = [((u >> 16) & 255, (u >> 8) & 255, u & 255) for u in unknown[:5]]
            raise ValueError(
                f"{path}: colours {shown} are not classes of {LABELMAP} (nor the ignore colour {IGNORE_COLOR})"
            )
        return np.array([lut[u] for u in uniq.tolist()], dtype=np.uint8)[inv].reshape(codes.shape)
    raise ValueError(f"{path}: mask mode {mode} is not a VOC class mask (palette, grey or RGB PNG)")


def _read_list(path: Path) -> list[str]:
    return [ln.split()[0] for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _listed_stems(root: Path) -> list[str]:
    stems: dict[str, None] = {}
    lists = (root / SETS_DIR / "Segmentation").glob("*.txt")
    for f in sorted(lists, key=lambda f: (f.stem != "trainval", f.name)):  # trainval first: the whole set's order
        stems.update(dict.fromkeys(_read_list(f)))
    return list(stems)


def missing_voc_masks(root: str | os.PathLike) -> list[str]:
    """Stems listed in ``ImageSets/Segmentation/*.txt`` without ``SegmentationClass/<stem>.png``.

    Empty when none of the listed stems has a mask (an unannotated set, e.g. to be labelled).
    """
    root = Path(root)
    listed = _listed_stems(root)
    missing = [s for s in listed if not (root / SEG_DIR / f"{s}.png").is_file()]
    return [] if len(missing) == len(listed) else missing


def check_voc_masks(root: str | os.PathLike, *, skip_bad: bool = False) -> list[str]:
    """Raise one ``ValueError`` naming the listed stems whose mask is missing (``missing_voc_masks``).

    With ``skip_bad`` warn instead; returns the missing stems.
    """
    missing = missing_voc_masks(root)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        msg = (
            f"{root}: {len(missing)} image(s) listed in {SETS_DIR}/Segmentation/ have no {SEG_DIR}/<stem>.png "
            f"mask: {shown}"
        )
        if not skip_bad:
            raise ValueError(msg)
        log.warning("%s; they are read without ground truth", msg)
    return missing


def voc_stems(root: str | os.PathLike) -> list[str]:
    """Stems listed in ``ImageSets/Segmentation/*.txt`` (all lists, first-seen order), else those
    of ``SegmentationClass/*.png``, else of ``JPEGImages``."""
    root = Path(root)
    stems = _listed_stems(root)
    if stems:
        return stems
    for folder, exts in ((root / SEG_DIR, (".png",)), (root / JPEG_DIR, IMAGE_EXTENSIONS)):
        if folder.is_dir():
            found = sorted(p.stem for p in folder.iterdir() if p.suffix.lower() in exts)
            if found:
                return found
    raise ValueError(f"{root}: no images in {JPEG_DIR}/ nor masks in {SEG_DIR}/")


def voc_main_labels(root: str | os.PathLike, classmap: ClassMap) -> dict[str, set[str]]:
    """Image-level labels from ``ImageSets/Main/<class>_<set>.txt`` (flag 1 or 0 = present)."""
    out: dict[str, set[str]] = {}
    main = Path(root) / SETS_DIR / "Main"
    if not main.is_dir():
        return out
    for name in classmap.foreground:
        for f in sorted(main.glob(f"{name}_*.txt")):
            for ln in f.read_text(encoding="utf-8").splitlines():
                parts = ln.split()
                if len(parts) >= 2 and parts[1] in ("1", "0"):
                    out.setdefault(parts[0], set()).add(name)
    return out
