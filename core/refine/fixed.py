"""Human-corrected masks as fixed labels of a run.

A reviewer corrects some masks (FiftyOne -> Label Studio -> FiftyOne, or a folder of PNGs); the
next run takes them as *fixed* labels:

- they are copied into the run folder (``RUN_DIR/fixed/<stem>.png``) when the run starts, so a
  resumed run uses exactly the same ones and a finished run shows which images a person labelled;
- every round's mask of those images is the human mask (:func:`override_round`): never replaced
  by the round's re-labelling, and so the run's final masks for them are the human masks;
- the filters never drop them (:func:`keep_for_training`): reliability 1.0, inside the area range,
  always among the next round's training labels;
- they weigh ``train.fixed_weight`` times an automatic mask in training (:func:`weighted_pairs`,
  by repetition within the epoch), as whole labels: no boundary band, no uncertain pixels ignored
  (255 in a human mask stays "ignore").

Masks are ``(H, W) uint8`` class-index arrays in the run's class map, the image's size, holding
only background, the image's own classes and 255. Pure functions plus small file helpers; no
FiftyOne, no Label Studio.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.classmap import IGNORE_INDEX
from core.data.dataset import Dataset
from core.io.atomic import staged_dir
from core.io.images import image_size, read_mask, write_mask
from core.refine import filters, rundir
from core.refine import records as rec

log = logging.getLogger(__name__)

FIXED = "fixed"
"""Folder of a run holding its fixed (human) masks, ``<stem>.png``."""

MaskSource = str | os.PathLike | np.ndarray
"""A fixed mask: a class-index PNG path or an ``(H, W) uint8`` array."""


def fixed_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / FIXED


def load(run_dir: str | os.PathLike) -> dict[str, Path]:
    """``{stem: PNG path}`` of the run's fixed masks (empty when it has none)."""
    folder = fixed_dir(run_dir)
    return {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}


def read_folder(folder: str | os.PathLike, dataset: Dataset) -> dict[str, Path]:
    """``{stem: path}`` of the ``<stem>.png`` masks in ``folder`` (e.g. ``--fixed-masks DIR``).

    ``ValueError`` when the folder does not exist, holds no PNG, or holds masks of images the dataset
    does not have (named, with the first known stems)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"fixed masks folder {folder} does not exist (expected <stem>.png class-index masks)")
    found = {p.stem: p for p in sorted(folder.glob("*.png"))}
    if not found:
        raise ValueError(f"fixed masks folder {folder} holds no <stem>.png mask")
    unknown = sorted(set(found) - set(dataset.stems))
    if unknown:
        raise ValueError(
            f"fixed masks folder {folder}: {len(unknown)} mask(s) name no image of the dataset: {unknown[:5]} "
            f"(images are e.g. {dataset.stems[:3]})"
        )
    return found


def check_mask(stem: str, mask: np.ndarray, shape: tuple[int, int], allowed: Sequence[int], where: str) -> np.ndarray:
    """``mask`` as ``(H, W) uint8`` if it fits the image (``shape``) and holds only ``allowed`` classes
    and 255; else ``ValueError`` naming ``where`` (the file or the sample) and what was expected."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(
            f"fixed mask of {stem!r} ({where}) must be an (H, W) uint8 class-index mask, got shape "
            f"{mask.shape} dtype {mask.dtype}"
        )
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"fixed mask of {stem!r} ({where}) is {mask.shape[1]}x{mask.shape[0]} (WxH); its image is "
            f"{shape[1]}x{shape[0]}"
        )
    bad = sorted(set(np.unique(mask).tolist()) - set(allowed) - {IGNORE_INDEX})
    if bad:
        raise ValueError(
            f"fixed mask of {stem!r} ({where}) holds class index(es) {bad[:5]}; the image's classes are "
            f"{sorted(allowed)} (0 = background) and 255 = ignore"
        )
    return mask


def check_all(fixed: Mapping[str, MaskSource], dataset: Dataset) -> dict[str, np.ndarray]:
    """Every fixed mask read and checked against its image (:func:`check_mask`), before anything is
    written. ``ValueError`` naming a stem that is not in the dataset."""
    by_stem = dataset.by_stem()
    unknown = sorted(s for s in fixed if s not in by_stem)
    if unknown:
        raise ValueError(f"fixed masks for {len(unknown)} image(s) not in the dataset: {unknown[:5]}")
    out = {}
    for stem in sorted(fixed):
        src = fixed[stem]
        sample = by_stem[stem]
        where = str(src) if isinstance(src, (str, os.PathLike)) else "array"
        mask = read_mask(src) if isinstance(src, (str, os.PathLike)) else np.asarray(src)
        allowed = rec.label_indices(sample, dataset)
        out[stem] = check_mask(stem, mask, image_size(sample.image_path), allowed, where)
    return out


def before_start(
    run_dir: str | os.PathLike, dataset: Dataset, fixed: Mapping[str, MaskSource] | None, *, resume: bool
) -> dict[str, np.ndarray] | None:
    """Everything checked before the run writes a file: the masks themselves (:func:`check_all`) and,
    when resuming a run that has finished rounds, that they are the ones it started with (``ValueError``
    naming the images that differ: start the run again with ``overwrite`` to change them). Returns
    the checked masks (``None`` when none are given)."""
    given = check_all(fixed, dataset) if fixed else None
    if resume and given is not None and rundir.finished_rounds(Path(run_dir)):
        stored = load(run_dir)
        differ = sorted(set(given) ^ set(stored))
        differ += [s for s in sorted(set(given) & set(stored)) if not np.array_equal(given[s], read_mask(stored[s]))]
        if differ:
            raise ValueError(
                f"the fixed masks differ from those run {run_dir} started with (images {differ[:5]}); "
                f"a resumed run keeps its fixed masks: start it again with overwrite to use new ones"
            )
    return given


def prepare(run_dir: str | os.PathLike, checked: Mapping[str, np.ndarray] | None, *, fresh: bool) -> dict[str, Path]:
    """The run's fixed masks, ``{stem: RUN_DIR/fixed/<stem>.png}``.

    ``fresh`` (a run starting at round 0): the masks ``checked`` by :func:`before_start` are written
    into ``RUN_DIR/fixed`` (built beside it and swapped in), replacing an older set; ``None`` removes
    an older set. A resumed run keeps its stored set."""
    folder = fixed_dir(run_dir)
    if not fresh:
        return load(run_dir)
    masks = dict(checked or {})
    if folder.exists():
        shutil.rmtree(folder)
    if not masks:
        return {}
    with staged_dir(folder) as tmp:
        for stem, mask in masks.items():
            write_mask(tmp / f"{stem}.png", mask)
    log.info("%d fixed (human) mask(s): never re-labelled, always trained on", len(masks))
    return load(run_dir)


def keep_for_training(records: Mapping[str, rec.ImageRecord], fixed: Mapping[str, Any]) -> None:
    """The filters never drop a fixed mask: ``in_area`` and ``train_next`` set on its record."""
    for stem in fixed:
        if stem in records:
            records[stem].in_area = True
            records[stem].train_next = True


def override_round(
    round_path: Path,
    records: MutableMapping[str, rec.ImageRecord],
    provenance: MutableMapping[str, Any],
    fixed: Mapping[str, Path],
    config,
) -> None:
    """Replace a finished round's masks of the fixed images by the human masks (before its ``DONE``).

    Per fixed image: ``masks/<stem>.png`` := the human mask; its record gets reliability 1.0, the
    human mask's area ratio and its change against the previous round's mask (the human mask too,
    so 0.0 from round 1 on); the filters' choice is made again (``rec.select_next``) with the fixed
    images always kept; ``scores.json`` is rewritten with ``provenance["fixed"]`` listing them.
    The stored probabilities stay the network's (they record what the network saw)."""
    if not fixed:
        return
    index = int(provenance.get("round", 0))
    previous = None if index == 0 else rundir.round_dir(round_path.parent, index - 1)
    for stem, path in fixed.items():
        if stem not in records:
            raise ValueError(f"fixed mask {path} names no image of round {round_path.name}")
        mask = read_mask(path)
        write_mask(round_path / "masks" / f"{stem}.png", mask)
        r = records[stem]
        r.score = 1.0
        r.area_ratio = filters.area_ratio(mask)
        if previous is not None and (previous / "masks" / f"{stem}.png").is_file():
            r.changed = filters.changed_fraction(mask, rec.previous_mask(previous, stem))
    for r in records.values():
        r.in_area = filters.area_ok(r.area_ratio, config.filters.area_min, config.filters.area_max)
    rec.select_next(records, config)
    keep_for_training(records, fixed)
    provenance["fixed"] = sorted(fixed)
    rec.write_scores(round_path, records, provenance)


def weighted_pairs(
    pairs: Sequence[tuple[Any, np.ndarray]], dataset: Dataset, fixed: Mapping[str, Path], weight: int
) -> list[tuple[Any, np.ndarray]]:
    """A round's training pairs with the fixed images' labels replaced by their human masks (whole:
    no ignored band) and each fixed pair repeated ``weight`` times (so it weighs ``weight`` automatic
    masks in every epoch). Fixed images missing from ``pairs`` are added."""
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise ValueError(f"train.fixed_weight must be an integer >= 1, got {weight!r}")
    if not fixed:
        return list(pairs)
    by_stem = dataset.by_stem()
    paths = {Path(by_stem[s].image_path) for s in fixed if s in by_stem}
    out = [p for p in pairs if not (isinstance(p[0], (str, os.PathLike)) and Path(p[0]) in paths)]
    for stem in sorted(fixed):
        if stem in by_stem:
            label = read_mask(fixed[stem])
            out += [(Path(by_stem[stem].image_path), label)] * weight
    return out
