"""Plain PNG mask folders: ``<folder>/<stem>.png``, one single-channel uint8 class-index PNG per image.

The class map is written beside the masks as ``<folder>/classes.json``; on read it is taken from
there, else from ``classes.json`` in the parent folder (the example layout), else unknown.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from core.classmap import ClassMap
from core.data.classes import CLASSES_FILE, find_classes
from core.data.dataset import Dataset
from core.formats.coco import ordered_stems
from core.formats.guard import input_files, refuse_overwriting_inputs
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike, as_mask
from core.io.atomic import OutputExistsError, check_folder_target, staged_dir
from core.io.images import read_mask, write_mask
from core.progress import Progress

log = logging.getLogger(__name__)


def png_files(folder: str | os.PathLike) -> list[Path]:
    """The ``*.png`` files directly in ``folder``, sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")


def write_png_masks(
    masks: Mapping[str, MaskLike],
    dataset: Dataset | ClassMap,
    dst: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write ``<dst>/<stem>.png`` per mask and ``<dst>/classes.json``; returns ``dst``.

    Everything is built in a folder beside ``dst`` and moved in only when every mask was
    written (``core.io.atomic.staged_dir``), so a bad mask leaves ``dst`` as it was. Raises
    ``OutputExistsError`` naming an existing output unless ``overwrite``, and ``OutputPathError``
    when ``dst`` is a file or an output would replace one of the inputs.
    """
    dst = check_folder_target(dst)
    ds = dataset if isinstance(dataset, Dataset) else None
    cmap = dataset.classmap if isinstance(dataset, Dataset) else dataset
    stems = ordered_stems(masks, ds)
    outputs = [dst / CLASSES_FILE] + [dst / f"{s}.png" for s in stems]
    existing = [p for p in outputs if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{existing[0]} already exists ({len(existing)} of the {len(outputs)} outputs do); "
            "pass overwrite=True (--overwrite) to replace them"
        )
    refuse_overwriting_inputs(outputs, input_files(masks, dataset))
    with staged_dir(dst) as tmp:
        for n, s in enumerate(stems, start=1):
            write_mask(tmp / f"{s}.png", as_mask(masks[s], s, cmap))
            if progress is not None:
                progress("png", n, len(stems))
        cmap.save(tmp / CLASSES_FILE)
    log.info("wrote %d PNG masks to %s", len(stems), dst)
    return dst


def read_png_masks(folder: str | os.PathLike) -> tuple[LazyMasks, ClassMap | None]:
    """``({stem: (H, W) uint8 mask}, class map or None)`` for the PNGs of ``folder``; read on access."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"mask folder {folder} does not exist")
    files = png_files(folder)
    if not files:
        raise ValueError(f"{folder}: no PNG masks")
    loaders = {p.stem: (lambda p=p: read_mask(p)) for p in files}
    return LazyMasks(loaders, {p.stem: str(p) for p in files}, files), find_classes(folder, folder.parent)
