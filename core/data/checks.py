"""Checks shared by every dataset reader: images readable, masks present and of the image's size.

Problems are collected over the whole dataset and reported in ONE error listing every file, or,
when the caller asks to skip bad files, dropped with one warning each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from core.classmap import ClassMap
from core.data.dataset import Dataset, Sample
from core.io.images import ImageReadError, check_images, image_size

log = logging.getLogger(__name__)


class MaskMismatchError(ValueError):
    """Ground-truth masks that do not fit their images; ``failures`` maps each mask to its reason."""

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        lines = "\n".join(f"  {p}: {why}" for p, why in self.failures.items())
        super().__init__(f"{len(self.failures)} mask(s) do not fit their images:\n{lines}")


def check_samples(
    samples: Sequence[Sample], *, skip_bad: bool = False, mask_sizes: Mapping[str, tuple[int, int]] | None = None
) -> list[Sample]:
    """Keep the samples whose image opens and whose mask (if any) has the image's size.

    ``mask_sizes`` gives ``(height, width)`` for masks that are not files (``mask_fn``, e.g.
    COCO). With ``skip_bad=False`` one ``ImageReadError`` lists every unreadable image, then one
    ``MaskMismatchError`` every bad mask; with ``skip_bad=True`` bad images are dropped and bad
    masks are detached from their image, each with a warning.
    """
    good_paths = {Path(p) for p in check_images([s.image_path for s in samples], skip_bad=skip_bad)}
    kept = [s for s in samples if Path(s.image_path) in good_paths]
    mask_sizes = mask_sizes or {}
    failures: dict[str, str] = {}
    bad_stems: set[str] = set()
    for s in kept:
        if not s.has_mask:
            continue
        msize: tuple[int, ...]
        where = str(s.mask_path) if s.mask_path is not None else f"{s.stem} (mask of {s.image_path.name})"
        if s.mask_path is not None:
            try:
                msize = image_size(s.mask_path)
            except ImageReadError as exc:
                failures.update(exc.failures)
                bad_stems.add(s.stem)
                continue
        elif s.stem in mask_sizes:
            msize = tuple(mask_sizes[s.stem])
        else:
            continue
        isize = image_size(s.image_path)
        if msize != isize:
            failures[where] = f"mask is {msize[1]}x{msize[0]} (WxH) but image {s.image_path} is {isize[1]}x{isize[0]}"
            bad_stems.add(s.stem)
    if failures:
        if not skip_bad:
            raise MaskMismatchError(failures)
        for p, why in failures.items():
            log.warning("ignoring ground truth %s: %s", p, why)
        kept = [replace(s, mask_path=None, mask_fn=None) if s.stem in bad_stems else s for s in kept]
    return kept


def check_labels(labels_by_file: Mapping[str, Sequence[str]], classmap: ClassMap, source: str | Path) -> None:
    """Raise one ``ValueError`` naming every file whose label is not a class of ``classmap``."""
    known = set(classmap.foreground)
    bad = {f: [lab for lab in labs if lab not in known] for f, labs in labels_by_file.items()}
    bad = {f: labs for f, labs in bad.items() if labs}
    if bad:
        unknown = sorted({lab for labs in bad.values() for lab in labs})
        shown = ", ".join(f"{f} ({'/'.join(labs)})" for f, labs in list(bad.items())[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(
            f"{source}: unknown class(es) {unknown} used by {len(bad)} image(s): {shown}{more}; "
            f"known classes: {list(classmap.foreground)}"
        )


def build_dataset(samples: Sequence[Sample], classmap: ClassMap, source: str | Path) -> Dataset:
    """A ``Dataset`` from checked samples; raises ``ValueError`` when nothing is left."""
    if not samples:
        raise ValueError(f"{source}: no usable images")
    with_gt = sum(s.has_mask for s in samples)
    log.info(
        "%s: %d images (%d with ground truth), classes %s", source, len(samples), with_gt, list(classmap.foreground)
    )
    return Dataset(samples=tuple(samples), classmap=classmap)


def check_gt_masks(dataset: Dataset) -> None:
    """Every ground-truth mask decodes, has its image's size and holds only class indices of the
    dataset's class map (``0..K-1``) or 255 (ignore).

    Read once before anything is written (a run calls it before round 0), so a bad mask stops the
    run at once instead of after the first round. Raises one ``ValueError`` on one line naming
    the first bad file and what is wrong with it (and how many others are bad).
    """
    import numpy as np

    from core.classmap import IGNORE_INDEX

    cmap = dataset.classmap
    k = cmap.num_classes
    problems: list[str] = []
    for s in dataset:
        if not s.has_mask:
            continue
        where = str(s.mask_path) if s.mask_path is not None else f"{s.stem} (mask of {s.image_path})"
        try:
            mask = s.load_mask()
        except ImageReadError as exc:
            problems += [f"{p}: {why}" for p, why in exc.failures.items()]
            continue
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if mask is None:
            continue
        present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
        bad = [int(v) for v in present if v >= k and v != IGNORE_INDEX]
        if bad:
            problems.append(
                f"{where} holds class index {', '.join(map(str, bad))}; the class map has {k} classes "
                f"(0..{k - 1}: {', '.join(cmap.names)}) and 255 = ignore"
            )
            continue
        try:
            ih, iw = image_size(s.image_path)
        except ImageReadError as exc:
            problems += [f"{p}: {why}" for p, why in exc.failures.items()]
            continue
        if mask.shape != (ih, iw):
            problems.append(f"{where} is {mask.shape[1]}x{mask.shape[0]} (WxH) but image {s.image_path} is {iw}x{ih}")
    if problems:
        more = f" (and {len(problems) - 1} more bad ground-truth mask(s))" if len(problems) > 1 else ""
        raise ValueError(f"ground truth: {problems[0]}{more}")
