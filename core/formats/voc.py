"""PASCAL VOC segmentation layout: masks out and back in.

Written as torchvision and the VOC tools expect it, so that
``torchvision.datasets.VOCSegmentation(root, year="2012", image_set="train" | "val" | "trainval")``
loads it unchanged::

    root/VOCdevkit/VOC2012/JPEGImages/<stem>.jpg                 the pictures (JPEG; copied when already JPEG)
    root/VOCdevkit/VOC2012/SegmentationClass/<stem>.png          palette PNGs, pixel value = class index
    root/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt   the stems, one per line
    root/VOCdevkit/VOC2012/ImageSets/Main/<class>_{train,val,trainval}.txt   "<stem>  1" / "<stem> -1"
    root/VOCdevkit/VOC2012/labelmap.txt                          "name:r,g,b::" per class (``core.data.voc_labelmap``)

The split is deterministic: the ``val_fraction`` of the images whose SHA-1 of the stem comes first
go to ``val`` (at least one when there are two images or more), the rest to ``train``; adding
images moves few others. A ``root`` that already ends in ``VOCdevkit/VOC<year>`` is written as is.

Read: that layout (given ``root`` or ``root/VOCdevkit/VOC2012``) and flat roots
(``root/SegmentationClass`` ..., as CVAT and older versions of this tool write). 255 is "ignore"
(drawn (224, 224, 192)) and is kept as 255 on read. On read, palette PNGs are mapped to classes
through their colours when a ``labelmap.txt`` gives them (so CVAT exports with any class order
work), RGB masks always through colours; a root without ``labelmap.txt`` uses the 21 VOC classes.
Reading the layout is ``core.data.voc_layout``, shared with the dataset reader.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from core.classmap import ClassMap, present_classes
from core.data.dataset import Dataset
from core.data.voc_labelmap import LABELMAP, default_colors, palette_for, write_labelmap
from core.data.voc_layout import JPEG_DIR, SEG_DIR, SETS_DIR, check_voc_masks, read_voc_mask, voc_classes
from core.formats.coco import ordered_stems
from core.formats.guard import input_files, refuse_overwriting_inputs
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike, as_mask
from core.io.atomic import OutputExistsError, check_folder_target, staged_dir, write_bytes_atomic, write_text_atomic
from core.io.images import check_images, image_size, read_image, write_image, write_mask
from core.progress import Progress

log = logging.getLogger(__name__)

DEVKIT = "VOCdevkit"
YEAR = "2012"
SPLITS = ("train", "val", "trainval")
DEFAULT_VAL_FRACTION = 0.2
_YEAR_DIR = re.compile(r"VOC\d{4}")


def devkit_dir(root: str | os.PathLike, year: str = YEAR) -> Path:
    """Where the VOC folders go for an output ``root``: ``root/VOCdevkit/VOC<year>``, or ``root`` itself
    when it already is such a folder."""
    root = Path(root)
    if _YEAR_DIR.fullmatch(root.name) and root.parent.name == DEVKIT:
        return root
    return root / DEVKIT / f"VOC{year}"


def find_voc_root(path: str | os.PathLike) -> Path | None:
    """The folder holding ``SegmentationClass/``: ``path`` itself, or ``path/VOCdevkit/VOC<year>``
    (the newest year when there are several); ``None`` when neither is there."""
    path = Path(path)
    if (path / SEG_DIR).is_dir():
        return path
    devkit = path / DEVKIT
    if devkit.is_dir():
        years = sorted(d for d in devkit.iterdir() if _YEAR_DIR.fullmatch(d.name) and (d / SEG_DIR).is_dir())
        if years:
            return years[-1]
    return None


def split_stems(stems: Sequence[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """``(train, val)``, each in the order of ``stems``: ``val`` holds ``round(n * val_fraction)`` stems
    (at least 1 when ``val_fraction > 0`` and n >= 2, at most n - 1), those whose SHA-1 comes first."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(stems)
    n_val = 0 if val_fraction == 0 or n < 2 else min(n - 1, max(1, round(n * val_fraction)))
    ranked = sorted(stems, key=lambda s: (hashlib.sha1(s.encode("utf-8")).hexdigest(), s))
    val = set(ranked[:n_val])
    return [s for s in stems if s not in val], [s for s in stems if s in val]


def _copy_as_jpeg(src: Path, dst: Path) -> None:
    """Copy a JPEG as is when it needs no EXIF rotation; otherwise decode (RGB, upright) and encode."""
    if src.suffix.lower() in (".jpg", ".jpeg"):
        with Image.open(src) as img:
            upright = img.getexif().get(0x0112, 1) == 1 and img.mode == "RGB"
        if upright:
            write_bytes_atomic(dst, src.read_bytes())
            return
    write_image(dst, read_image(src))


def _outputs(voc: Path, stems: list[str], cmap: ClassMap) -> list[Path]:
    sets = voc / SETS_DIR
    outputs = [voc / LABELMAP] + [sets / "Segmentation" / f"{split}.txt" for split in SPLITS]
    outputs += [sets / "Main" / f"{name}_{split}.txt" for name in cmap.foreground for split in SPLITS]
    return outputs + [p for s in stems for p in (voc / JPEG_DIR / f"{s}.jpg", voc / SEG_DIR / f"{s}.png")]


def _write_root(
    voc: Path,
    masks: Mapping[str, MaskLike],
    dataset: Dataset,
    stems: list[str],
    val_fraction: float,
    progress: Progress | None,
) -> None:
    """Write the whole VOC layout into ``voc`` (inside a staging folder)."""
    cmap = dataset.classmap
    by_stem = dataset.by_stem()
    palette = palette_for(default_colors(cmap))
    labels: dict[str, set[str]] = {}
    for n, s in enumerate(stems, start=1):
        mask = as_mask(masks[s], s, cmap)
        sample = by_stem[s]
        ih, iw = image_size(sample.image_path)
        if mask.shape != (ih, iw):
            raise ValueError(
                f"mask {s!r} is {mask.shape[1]}x{mask.shape[0]} (WxH) but image {sample.image_path} is {iw}x{ih}"
            )
        write_mask(voc / SEG_DIR / f"{s}.png", mask, palette=palette)
        _copy_as_jpeg(Path(sample.image_path), voc / JPEG_DIR / f"{s}.jpg")
        labels[s] = set(sample.labels) | {cmap.names[i] for i in present_classes(mask)}
        if progress is not None:
            progress("voc", n, len(stems))
    train, val = split_stems(stems, val_fraction)
    sets = voc / SETS_DIR
    for split, members in zip(SPLITS, (train, val, stems)):
        write_text_atomic(sets / "Segmentation" / f"{split}.txt", "".join(f"{s}\n" for s in members))
        for name in cmap.foreground:
            rows = [f"{s} {1 if name in labels[s] else -1:2d}\n" for s in members]
            write_text_atomic(sets / "Main" / f"{name}_{split}.txt", "".join(rows))
    write_labelmap(voc / LABELMAP, cmap, default_colors(cmap))


def write_voc(
    masks: Mapping[str, MaskLike],
    dataset: Dataset,
    root: str | os.PathLike,
    *,
    overwrite: bool = False,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    year: str = YEAR,
    progress: Progress | None = None,
) -> Path:
    """Write ``masks`` (``{stem: mask or PNG path}``) and their images as a VOC dataset under ``root``.

    Returns the VOC folder written, ``root/VOCdevkit/VOC<year>`` (``devkit_dir``); torchvision reads
    it as ``VOCSegmentation(root, year=year, image_set="train" | "val" | "trainval")``.
    ``val_fraction``: share of the images in ``val.txt`` (``split_stems``). Every mask needs its
    image in ``dataset`` (of the same size). The images are decoded (``check_images``) before
    anything is written; the files are built beside ``root`` and moved in only when complete
    (``core.io.atomic.staged_dir``), so a bad mask or image leaves ``root`` as it was. Raises
    ``OutputExistsError`` naming an existing output unless ``overwrite`` (other files in ``root``
    are left alone), ``OutputPathError`` when ``root`` is a file or an output would replace an input.
    """
    if not isinstance(dataset, Dataset):
        raise ValueError("VOC export needs the images: pass a Dataset (on the command line: --images DIR)")
    if not re.fullmatch(r"\d{4}", str(year)):
        raise ValueError(f"year must be four digits such as '2012', got {year!r}")
    split_stems([], val_fraction)  # checks the fraction before anything is read
    root = check_folder_target(root)
    voc = devkit_dir(root, year)
    stems = ordered_stems(masks, dataset)
    if not stems:
        raise ValueError("no masks to write")
    outputs = _outputs(voc, stems, dataset.classmap)
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{existing[0]} already exists ({len(existing)} of the {len(outputs)} outputs do); "
            "pass overwrite=True (--overwrite) to replace them"
        )
    refuse_overwriting_inputs(outputs, input_files(masks, dataset))
    by_stem = dataset.by_stem()
    check_images([by_stem[s].image_path for s in stems])
    with staged_dir(root) as tmp:
        _write_root(tmp / voc.relative_to(root), masks, dataset, stems, val_fraction, progress)
    log.info("wrote %d images and masks to VOC folder %s", len(stems), voc)
    return voc


def read_voc_masks(root: str | os.PathLike) -> tuple[LazyMasks, ClassMap]:
    """``({stem: (H, W) uint8 mask}, class map)`` for every ``SegmentationClass/*.png``; read on access.

    ``root``: the folder holding ``SegmentationClass/``, or one holding ``VOCdevkit/VOC<year>/``.

    Raises ``ValueError`` naming the images listed in ``ImageSets/Segmentation`` whose mask is missing.
    """
    root = find_voc_root(root) or Path(root)
    seg = root / SEG_DIR
    if not seg.is_dir():
        raise FileNotFoundError(f"{root}: no {SEG_DIR}/ folder of VOC masks")
    check_voc_masks(root)
    cmap, colors = voc_classes(root)
    files = sorted(p for p in seg.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise ValueError(f"{seg}: no PNG masks")
    loaders = {p.stem: (lambda p=p: read_voc_mask(p, colors)) for p in files}
    return LazyMasks(loaders, {p.stem: str(p) for p in files}, files), cmap
