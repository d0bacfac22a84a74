"""PASCAL VOC segmentation layout: masks out and back in.

Layout (written and read)::

    root/JPEGImages/<stem>.jpg                  the pictures (JPEG; copied when already JPEG)
    root/SegmentationClass/<stem>.png           palette PNGs, pixel value = class index, VOC colours
    root/ImageSets/Segmentation/<subset>.txt    the stems, one per line
    root/ImageSets/Main/<class>_<subset>.txt    image-level labels: "<stem>  1" (present) / "<stem> -1"
    root/labelmap.txt                           "name:r,g,b::" per class (see ``voc_labelmap``)

255 is "ignore" (drawn (224, 224, 192)) and is kept as 255 on read. On read, palette PNGs are
mapped to classes through their colours when a ``labelmap.txt`` gives them (so CVAT exports with
any class order work), RGB masks always through colours; a root without ``labelmap.txt`` uses
the 21 VOC classes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.classmap import IGNORE_INDEX, ClassMap
from core.data.dataset import Dataset
from core.formats.coco import ordered_stems
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike, as_mask, present_classes
from core.formats.voc_labelmap import (
    IGNORE_COLOR, LABELMAP, VOC_CLASSES, default_colors, palette_for, read_labelmap, write_labelmap,
)
from core.io.atomic import OutputExistsError, write_bytes_atomic, write_text_atomic
from core.io.images import IMAGE_EXTENSIONS, ImageReadError, image_size, read_image, write_image, write_mask

log = logging.getLogger(__name__)

JPEG_DIR, SEG_DIR, SETS_DIR = "JPEGImages", "SegmentationClass", "ImageSets"
Progress = Callable[[str, int, int], None]


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
    if mode == "P":
        pal = np.zeros((256, 3), dtype=np.uint8)
        flat = np.array(palette or [], dtype=np.uint8)[: 768]
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
            raise ValueError(f"{path}: colours {shown} are not classes of {LABELMAP} (nor the ignore colour "
                             f"{IGNORE_COLOR})")
        return np.array([lut[u] for u in uniq.tolist()], dtype=np.uint8)[inv].reshape(codes.shape)
    raise ValueError(f"{path}: mask mode {mode} is not a VOC class mask (palette, grey or RGB PNG)")


def _read_list(path: Path) -> list[str]:
    return [ln.split()[0] for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def voc_stems(root: str | os.PathLike) -> list[str]:
    """Stems listed in ``ImageSets/Segmentation/*.txt`` (all lists, first-seen order), else those
    of ``SegmentationClass/*.png``, else of ``JPEGImages``."""
    root = Path(root)
    seg_sets = sorted((root / SETS_DIR / "Segmentation").glob("*.txt"))
    stems: dict[str, None] = {}
    for f in seg_sets:
        stems.update(dict.fromkeys(_read_list(f)))
    if stems:
        return list(stems)
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


def _copy_as_jpeg(src: Path, dst: Path) -> None:
    """Copy a JPEG as is when it needs no EXIF rotation; otherwise decode (RGB, upright) and encode."""
    if src.suffix.lower() in (".jpg", ".jpeg"):
        with Image.open(src) as img:
            upright = img.getexif().get(0x0112, 1) == 1 and img.mode == "RGB"
        if upright:
            write_bytes_atomic(dst, src.read_bytes())
            return
    write_image(dst, read_image(src))


def write_voc(masks: Mapping[str, MaskLike], dataset: Dataset, root: str | os.PathLike, *,
              overwrite: bool = False, subset: str = "default", progress: Progress | None = None) -> Path:
    """Write ``masks`` (``{stem: mask or PNG path}``) and their images as a VOC root; returns ``root``.

    Every mask needs its image in ``dataset`` (of the same size): all problems are reported in
    one error before anything is written. Raises ``OutputExistsError`` naming an existing output
    unless ``overwrite`` (other files in ``root`` are left alone).
    """
    if not isinstance(dataset, Dataset):
        raise ValueError("VOC export needs the images: pass a Dataset (on the command line: --images DIR)")
    root = Path(root)
    cmap = dataset.classmap
    stems = ordered_stems(masks, dataset)
    if not stems:
        raise ValueError("no masks to write")
    by_stem = dataset.by_stem()
    sets = root / SETS_DIR
    outputs = [root / LABELMAP, sets / "Segmentation" / f"{subset}.txt"]
    outputs += [sets / "Main" / f"{name}_{subset}.txt" for name in cmap.foreground]
    outputs += [p for s in stems for p in (root / JPEG_DIR / f"{s}.jpg", root / SEG_DIR / f"{s}.png")]
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing[0]} already exists ({len(existing)} of the {len(outputs)} outputs do); "
                                "pass overwrite=True (--overwrite) to replace them")
    failures: dict[str, str] = {}
    for s in stems:
        try:
            image_size(by_stem[s].image_path)
        except ImageReadError as exc:
            failures.update(exc.failures)
    if failures:
        raise ImageReadError(failures)
    palette = palette_for(default_colors(cmap))
    labels: dict[str, set[str]] = {}
    for n, s in enumerate(stems, start=1):
        mask = as_mask(masks[s], s, cmap)
        sample = by_stem[s]
        ih, iw = image_size(sample.image_path)
        if mask.shape != (ih, iw):
            raise ValueError(f"mask {s!r} is {mask.shape[1]}x{mask.shape[0]} (WxH) but image "
                             f"{sample.image_path} is {iw}x{ih}")
        write_mask(root / SEG_DIR / f"{s}.png", mask, palette=palette)
        _copy_as_jpeg(Path(sample.image_path), root / JPEG_DIR / f"{s}.jpg")
        labels[s] = set(sample.labels) | {cmap.names[i] for i in present_classes(mask)}
        if progress is not None:
            progress("voc", n, len(stems))
    write_text_atomic(sets / "Segmentation" / f"{subset}.txt", "\n".join(stems) + "\n")
    for name in cmap.foreground:
        rows = [f"{s} {1 if name in labels[s] else -1:2d}" for s in stems]
        write_text_atomic(sets / "Main" / f"{name}_{subset}.txt", "\n".join(rows) + "\n")
    write_labelmap(root / LABELMAP, cmap, default_colors(cmap))
    log.info("wrote %d images and masks to VOC root %s", len(stems), root)
    return root


def read_voc_masks(root: str | os.PathLike) -> tuple[LazyMasks, ClassMap]:
    """``({stem: (H, W) uint8 mask}, class map)`` for every ``SegmentationClass/*.png``; read on access."""
    root = Path(root)
    seg = root / SEG_DIR
    if not seg.is_dir():
        raise FileNotFoundError(f"{root}: no {SEG_DIR}/ folder of VOC masks")
    cmap, colors = voc_classes(root)
    files = sorted(p for p in seg.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise ValueError(f"{seg}: no PNG masks")
    loaders = {p.stem: (lambda p=p: read_voc_mask(p, colors)) for p in files}
    return LazyMasks(loaders, {p.stem: str(p) for p in files}), cmap
