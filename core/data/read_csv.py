"""A folder of images with a CSV of image-level labels (``filename,label``)."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.data.checks import build_dataset, check_labels, check_samples
from core.data.classes import ClassesArg, classmap_for
from core.data.dataset import Dataset, Sample
from core.data.stems import unique_stems

log = logging.getLogger(__name__)

LABEL_SEPARATOR = ";"
"""Several labels of one image may share a cell (``ellipse;star``) or use one row each."""


def parse_labels_csv(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """``{filename: labels}`` from a CSV with a header holding ``filename`` and ``label`` columns.

    Column names are case-insensitive; other columns are ignored. A file listed on several rows
    gets all their labels; an empty label cell means "no label known". Raises ``ValueError``
    naming the file and line for a missing header or short row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels CSV {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text CSV ({exc})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{path}: empty CSV; expected a header 'filename,label' and one row per image")
    header = [c.strip().lower() for c in rows[0]]
    if "filename" not in header or "label" not in header:
        raise ValueError(f"{path}: first line must be a header with columns 'filename,label', got {rows[0]}")
    fi, li = header.index("filename"), header.index("label")
    out: dict[str, list[str]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) <= max(fi, li):
            raise ValueError(f"{path}, line {lineno}: expected columns {rows[0]}, got {row}")
        name = row[fi].strip()
        if not name:
            raise ValueError(f"{path}, line {lineno}: empty filename")
        labels = out.setdefault(name, [])
        for lab in row[li].split(LABEL_SEPARATOR):
            lab = lab.strip()
            if lab and lab != "background" and lab not in labels:
                labels.append(lab)
    return {k: tuple(v) for k, v in out.items()}


def _pick_root(names: Sequence[str], candidates: Sequence[Path]) -> Path:
    for root in candidates:
        if root.is_dir() and any((root / n).exists() for n in names[:20]):
            return root
    return candidates[0]


def samples_from_labels(labels: Mapping[str, Sequence[str]], images: Path, masks: Path | None) -> list[Sample]:
    """Samples for ``{relative filename: labels}`` under ``images``, masks ``<masks>/<stem>.png``."""
    names = list(labels)
    stems = unique_stems(names)
    out = []
    for name, stem in zip(names, stems):
        mask_path = masks / f"{stem}.png" if masks is not None and (masks / f"{stem}.png").exists() else None
        out.append(Sample(stem=stem, image_path=images / name, labels=tuple(labels[name]), mask_path=mask_path))
    return out


def default_masks_dir(images: Path, base: Path) -> Path | None:
    """``<base>/masks``, else ``masks/`` beside an ``images/`` folder, if either exists."""
    cands = [base / "masks"]
    if images.name.lower() == "images":
        cands.append(images.parent / "masks")
    for cand in cands:
        if cand.is_dir() and cand.resolve() != images.resolve():
            log.info("ground-truth masks from %s", cand)
            return cand
    return None


def read_csv_dataset(
    csv_path: str | os.PathLike,
    images: str | os.PathLike | None = None,
    *,
    masks: str | os.PathLike | None = None,
    classes: ClassesArg = None,
    skip_bad: bool = False,
) -> Dataset:
    """Images listed in a ``filename,label`` CSV.

    ``images``: the folder the file names are relative to (default: ``images/`` beside the CSV,
    else the CSV's folder). ``masks``: ground-truth ``<stem>.png`` class-index masks (default:
    ``masks/`` beside the CSV or beside an ``images/`` folder, if any; images without a mask file have no ground
    truth). ``classes``: the class map (default: ``classes.json`` beside the CSV, else the
    sorted label names). Missing or unreadable images raise one ``ImageReadError`` listing all
    of them, or are skipped with a warning when ``skip_bad``.
    """
    csv_path = Path(csv_path)
    labels = parse_labels_csv(csv_path)
    if not labels:
        raise ValueError(f"{csv_path}: the CSV lists no images")
    names = list(labels)
    root = Path(images) if images is not None else _pick_root(names, [csv_path.parent / "images", csv_path.parent])
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} (for {csv_path}) does not exist")
    mask_dir = Path(masks) if masks is not None else default_masks_dir(root, csv_path.parent)
    if mask_dir is not None and not mask_dir.is_dir():
        raise FileNotFoundError(f"mask folder {mask_dir} does not exist")
    cmap = classmap_for((lab for labs in labels.values() for lab in labs), classes, csv_path.parent, root)
    check_labels(labels, cmap, csv_path)
    samples = check_samples(samples_from_labels(labels, root, mask_dir), skip_bad=skip_bad)
    return build_dataset(samples, cmap, csv_path)
