"""Label-free review signals of a run as FiftyOne fields: what a reviewer sorts and filters by
when there is no ground truth.

* per round, ``<prefix>_round_<k>_confidence``: an ``fo.Heatmap`` of the per-pixel confidence,
  top-1 minus top-2 class probability (``core.refine.filters.margin_map``) of the probabilities the
  round stored (``round_XX/probs/<stem>.npz``), as a uint8 PNG (0 = undecided, 255 = certain)
  under ``<run_dir>/fiftyone_confidence/round_XX/``;
* for the best round, the parts of its reliability (``margin``, ``agreement``, ``stability``) and
  the mask's foreground ``area_ratio`` as float fields ``<prefix>_<part>``, its confidence as
  ``<prefix>_confidence``, and the tag ``<prefix>_dropped`` on the samples whose mask the filters
  left out of training (area outside the limits, or among the least reliable).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from gfn_fiftyone.naming import SUBSCORES, RunNames

log = logging.getLogger(__name__)

CONFIDENCE_DIR = "fiftyone_confidence"
"""Folder of the confidence maps inside the run folder (the engine does not read it)."""
CONFIDENCE_RANGE = (0, 255)


def confidence_map(probs: np.ndarray) -> np.ndarray:
    """``(H, W) uint8`` confidence from ``(K, H, W)`` probabilities: ``round(255 * (top1 - top2))``."""
    from core.refine.filters import margin_map

    return np.clip(np.rint(margin_map(probs) * 255.0), 0, 255).astype(np.uint8)


def write_confidence_maps(run_dir: Path, info) -> dict[str, Path]:
    """Confidence PNGs of round ``info`` (a ``RoundInfo``) from its stored probabilities;
    ``{stem: path}``. Images without a probabilities file (none in a finished round) are left out."""
    from core.io.images import write_mask
    from core.refine import rundir

    probs_dir = Path(info.masks_dir).parent / "probs"
    out_dir = Path(run_dir) / CONFIDENCE_DIR / rundir.round_name(info.index)
    out: dict[str, Path] = {}
    for stem in sorted(info.scores):
        src = probs_dir / f"{stem}.npz"
        if not src.is_file():
            log.warning("round %d has no probabilities for %s (%s); no confidence map", info.index, stem, src)
            continue
        out[stem] = write_mask(out_dir / f"{stem}.png", confidence_map(rundir.load_probs(src)))
    return out


def write_heatmap_field(
    dataset, field_name: str, maps: Mapping[str, Path], ids: Mapping[str, str], rng=CONFIDENCE_RANGE
) -> int:
    """``fo.Heatmap(map_path=..., range=rng)`` for every stem of ``maps`` (files referenced, not copied)."""
    import fiftyone as fo

    values = {ids[s]: fo.Heatmap(map_path=str(Path(p).resolve()), range=list(rng)) for s, p in maps.items() if s in ids}
    dataset.set_values(field_name, values, key_field="id")
    return len(values)


def write_best_signals(dataset, names: RunNames, info, ids: Mapping[str, str], maps: Mapping[str, Path]) -> None:
    """The best round's confidence, reliability parts and ``dropped`` tag (see the module docstring)."""
    from gfn_fiftyone.convert import write_float_field

    write_heatmap_field(dataset, names.best_confidence, maps, ids)
    details: Mapping[str, Mapping] = info.details
    for part in SUBSCORES:
        write_float_field(dataset, names.subscore(part), {s: d.get(part) for s, d in details.items()}, ids)
    tag_dropped(dataset, names, [ids[s] for s, d in details.items() if s in ids and not d.get("train_next", True)])


def tag_dropped(dataset, names: RunNames, sample_ids: list[str]) -> None:
    """Move the ``<prefix>_dropped`` tag to exactly ``sample_ids``."""
    tag = names.dropped_tag
    dataset.untag_samples(tag)
    if sample_ids:
        dataset.select(sample_ids).tag_samples(tag)
    log.info("tagged %d sample(s) %r (left out of training by the filters)", len(sample_ids), tag)
