"""Folders of images: one sub-folder per class, or one plain folder (one label for all, or none)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.classmap import ClassMap
from core.data.checks import build_dataset, check_labels, check_samples
from core.data.classes import ClassesArg, classmap_for
from core.data.dataset import Dataset, Sample
from core.data.read_csv import default_masks_dir, parse_labels_csv
from core.data.stems import unique_stems
from core.io.images import IMAGE_EXTENSIONS, ImageReadError, list_images

log = logging.getLogger(__name__)

NOT_CLASSES = frozenset({"masks", "images", "__pycache__"})
"""Sub-folder names never taken for a class folder."""


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def class_folders(root: str | os.PathLike) -> list[Path]:
    """Sub-folders of ``root`` that hold images directly (hidden and ``masks``/``images`` excluded)."""
    root = Path(root)
    return [
        d
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".") and d.name not in NOT_CLASSES and _images_in(d)
    ]


def _mask_for(masks: Path | None, stem: str, sub: str | None = None) -> Path | None:
    if masks is None:
        return None
    for cand in ([masks / sub / f"{stem}.png"] if sub else []) + [masks / f"{stem}.png"]:
        if cand.is_file():
            return cand
    return None


def read_class_folders(
    root: str | os.PathLike,
    *,
    masks: str | os.PathLike | None = None,
    classes: ClassesArg = None,
    skip_bad: bool = False,
) -> Dataset:
    """One sub-folder per class (``root/<class>/<image>``); the folder name is the image label.

    ``masks``: ground truth as ``<masks>/<stem>.png`` or ``<masks>/<class>/<stem>.png`` (default
    ``root/masks`` if it exists). ``classes``: the class map (default ``root/classes.json``, else
    the sorted folder names). When two class folders hold the same file name, stems become
    ``<class>_<name>`` (see ``core.data.stems``).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    folders = class_folders(root)
    if not folders:
        raise ValueError(f"{root}: no class sub-folders holding images (expected {root}/<class>/<image>)")
    rel = [f"{d.name}/{p.name}" for d in folders for p in _images_in(d)]
    labels = {r: (r.split("/", 1)[0],) for r in rel}
    cmap = classmap_for([d.name for d in folders], classes, root)
    check_labels(labels, cmap, root)
    mask_dir = Path(masks) if masks is not None else default_masks_dir(root, root)
    samples = [
        Sample(
            stem=stem, image_path=root / r, labels=labels[r], mask_path=_mask_for(mask_dir, stem, r.split("/", 1)[0])
        )
        for r, stem in zip(rel, unique_stems(rel))
    ]
    return build_dataset(check_samples(samples, skip_bad=skip_bad), cmap, root)


def _labels_for(
    files: Sequence[Path],
    labels: Mapping[str, Sequence[str] | str] | str | os.PathLike | None,
    label: str | None,
    *,
    skip_bad: bool = False,
) -> dict[str, tuple[str, ...]]:
    """``{file name: labels}``; ``labels`` maps file names or stems (or is a CSV), ``label`` fills the rest.

    A CSV row naming a file that is not in the folder raises ``ImageReadError`` naming it (a
    warning with ``skip_bad``).
    """
    table: Mapping[str, Sequence[str] | str] = {}
    if isinstance(labels, (str, os.PathLike)):
        table = parse_labels_csv(labels)
        known = {f.name for f in files} | {f.stem for f in files}
        folder = files[0].parent if files else Path(".")
        missing = {
            str(folder / name): f"listed in {labels} but not in the folder" for name in table if name not in known
        }
        if missing and not skip_bad:
            raise ImageReadError(missing)
        for name, why in missing.items():
            log.warning("ignoring %s: %s", name, why)
    elif labels is not None:
        table = labels
    out = {}
    for f in files:
        got = table.get(f.name, table.get(f.stem))
        if isinstance(got, str):
            got = (got,)
        out[f.name] = tuple(got) if got else ((label,) if label else ())
    return out


def read_image_folder(
    images: str | os.PathLike,
    classmap: ClassMap | None = None,
    label: str | None = None,
    masks: str | os.PathLike | None = None,
    *,
    labels: Mapping[str, Sequence[str] | str] | str | os.PathLike | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Every image directly in ``images``.

    ``label``: one class name given to every image (e.g. ``"horse"``) that ``labels`` (a mapping
    from file name or stem to label(s), or a ``filename,label`` CSV) does not label. ``classmap``:
    default ``classes.json`` beside or inside the folder, else the labels given. ``masks``:
    ground-truth ``<stem>.png`` (default: ``masks/`` beside an ``images/`` folder).
    """
    folder = Path(images)
    files = list_images(folder)
    table = _labels_for(files, labels, label, skip_bad=skip_bad)
    base = folder.parent if folder.name.lower() == "images" else folder
    cmap = classmap_for((lab for labs in table.values() for lab in labs), classmap, base, folder)
    check_labels(table, cmap, folder)
    if not cmap.foreground:
        log.warning("%s: no image-level labels (pass a label or a labels CSV); class map is background only", folder)
    mask_dir = Path(masks) if masks is not None else default_masks_dir(folder, base)
    if mask_dir is not None and not mask_dir.is_dir():
        raise FileNotFoundError(f"mask folder {mask_dir} does not exist")
    names = [f.name for f in files]
    samples = [
        Sample(stem=stem, image_path=f, labels=table[f.name], mask_path=_mask_for(mask_dir, stem))
        for f, stem in zip(files, unique_stems(names))
    ]
    return build_dataset(check_samples(samples, skip_bad=skip_bad), cmap, folder)
