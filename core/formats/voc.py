"""PASCAL VOC segmentation layout: masks out and back in.

Layout (written and read)::

    root/JPEGImages/<stem>.jpg                  the pictures (JPEG; copied when already JPEG)
    root/SegmentationClass/<stem>.png           palette PNGs, pixel value = class index, VOC colours
    root/ImageSets/Segmentation/<subset>.txt    the stems, one per line
    root/ImageSets/Main/<class>_<subset>.txt    image-level labels: "<stem>  1" (present) / "<stem> -1"
    root/labelmap.txt                           "name:r,g,b::" per class (see ``core.data.voc_labelmap``)

255 is "ignore" (drawn (224, 224, 192)) and is kept as 255 on read. On read, palette PNGs are
mapped to classes through their colours when a ``labelmap.txt`` gives them (so CVAT exports with
any class order work), RGB masks always through colours; a root without ``labelmap.txt`` uses
the 21 VOC classes. Reading the layout is ``core.data.voc_layout``, shared with the dataset reader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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


def _copy_as_jpeg(src: Path, dst: Path) -> None:
    """Copy a JPEG as is when it needs no EXIF rotation; otherwise decode (RGB, upright) and encode."""
    if src.suffix.lower() in (".jpg", ".jpeg"):
        with Image.open(src) as img:
            upright = img.getexif().get(0x0112, 1) == 1 and img.mode == "RGB"
        if upright:
            write_bytes_atomic(dst, src.read_bytes())
            return
    write_image(dst, read_image(src))


def _outputs(root: Path, stems: list[str], cmap: ClassMap, subset: str) -> list[Path]:
    sets = root / SETS_DIR
    outputs = [root / LABELMAP, sets / "Segmentation" / f"{subset}.txt"]
    outputs += [sets / "Main" / f"{name}_{subset}.txt" for name in cmap.foreground]
    return outputs + [p for s in stems for p in (root / JPEG_DIR / f"{s}.jpg", root / SEG_DIR / f"{s}.png")]


def _write_root(
    tmp: Path, masks: Mapping[str, MaskLike], dataset: Dataset, stems: list[str], subset: str, progress: Progress | None
) -> None:
    """Write the whole VOC layout into ``tmp`` (a staging folder)."""
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
        write_mask(tmp / SEG_DIR / f"{s}.png", mask, palette=palette)
        _copy_as_jpeg(Path(sample.image_path), tmp / JPEG_DIR / f"{s}.jpg")
        labels[s] = set(sample.labels) | {cmap.names[i] for i in present_classes(mask)}
        if progress is not None:
            progress("voc", n, len(stems))
    sets = tmp / SETS_DIR
    write_text_atomic(sets / "Segmentation" / f"{subset}.txt", "\n".join(stems) + "\n")
    for name in cmap.foreground:
        rows = [f"{s} {1 if name in labels[s] else -1:2d}" for s in stems]
        write_text_atomic(sets / "Main" / f"{name}_{subset}.txt", "\n".join(rows) + "\n")
    write_labelmap(tmp / LABELMAP, cmap, default_colors(cmap))


def write_voc(
    masks: Mapping[str, MaskLike],
    dataset: Dataset,
    root: str | os.PathLike,
    *,
    overwrite: bool = False,
    subset: str = "default",
    progress: Progress | None = None,
) -> Path:
    """Write ``masks`` (``{stem: mask or PNG path}``) and their images as a VOC root; returns ``root``.

    Every mask needs its image in ``dataset`` (of the same size). The images are decoded
    (``check_images``) before anything is written; the root is built beside ``root`` and moved in
    only when complete (``core.io.atomic.staged_dir``), so a bad mask or image leaves ``root`` as
    it was. Raises ``OutputExistsError`` naming an existing output unless ``overwrite`` (other
    files in ``root`` are left alone), ``OutputPathError`` when ``root`` is a file or an output
    would replace an input.
    """
    if not isinstance(dataset, Dataset):
        raise ValueError("VOC export needs the images: pass a Dataset (on the command line: --images DIR)")
    root = check_folder_target(root)
    stems = ordered_stems(masks, dataset)
    if not stems:
        raise ValueError("no masks to write")
    outputs = _outputs(root, stems, dataset.classmap, subset)
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
        _write_root(tmp, masks, dataset, stems, subset, progress)
    log.info("wrote %d images and masks to VOC root %s", len(stems), root)
    return root


def read_voc_masks(root: str | os.PathLike) -> tuple[LazyMasks, ClassMap]:
    """``({stem: (H, W) uint8 mask}, class map)`` for every ``SegmentationClass/*.png``; read on access.

    Raises ``ValueError`` naming the images listed in ``ImageSets/Segmentation`` whose mask is missing.
    """
    root = Path(root)
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
