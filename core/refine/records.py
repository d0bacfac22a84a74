"""Per-image records of a round and the files they go to (``masks/``, ``probs/``, ``scores.json``).

One :class:`ImageRecord` per image; :func:`finish_image` turns a round's probabilities and mask into
the record and writes the mask and the probabilities; :func:`write_scores` writes ``scores.json``
with the filters' verdicts (area ratio, who trains the next round).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.data.dataset import Dataset, Sample
from core.io.images import read_mask, write_mask
from core.refine import filters, rundir
from core.refine.config import RunConfig


@dataclass(kw_only=True)
class ImageRecord:
    """What a round knows about one image's mask (all numbers in [0, 1])."""

    score: float
    """Reliability (mean of ``margin``, ``agreement`` and, from round 1, ``stability``)."""
    changed: float | None
    """Fraction of pixels changed against the previous round (``None`` in round 0)."""
    area_ratio: float
    margin: float
    agreement: float
    stability: float | None = None
    in_area: bool = False
    train_next: bool = False
    """Whether this mask is among the labels the next round trains on."""


def label_indices(sample: Sample, dataset: Dataset) -> list[int]:
    """Background plus the sample's own class indices; ``ValueError`` naming an unlabelled image."""
    if not sample.labels:
        raise ValueError(
            f"image {sample.image_path} has no image-level label; every image needs one "
            f"(one of {list(dataset.classmap.foreground)})"
        )
    return filters.allowed_classes([dataset.classmap.index(n) for n in sample.labels], dataset.classmap.num_classes)


def finish_image(
    round_path: Path,
    stem: str,
    *,
    mask: np.ndarray,
    probs: np.ndarray,
    net_mask: np.ndarray,
    allowed: Sequence[int],
    previous: np.ndarray | None,
    config: RunConfig,
    base_score: float | None = None,
    size: tuple[int, int] | None = None,
) -> ImageRecord:
    """Apply category consistency, write ``masks/<stem>.png`` and ``probs/<stem>.npz``, return the record.

    ``mask``/``net_mask`` ``(h, w) uint8``, ``probs`` ``(K, h, w) float32`` and ``previous`` (last
    round's mask, ``None`` in round 0) at the run's working size of the picture; ``size``: the
    picture's own ``(H, W)``, at which the mask is written (nearest neighbour, ``core.io.working``;
    ``None``: the mask's size). ``base_score`` (round 0: the initial route's own score) is averaged
    into the reliability. Every number of the record is computed at the working size.
    """
    from core.io.working import to_size

    mask = filters.consistent_mask(mask, allowed)
    net_mask = filters.consistent_mask(net_mask, allowed)
    probs = filters.consistent_probs(probs, allowed, config.post.consistency)
    write_mask(round_path / "masks" / f"{stem}.png", mask if size is None else to_size(mask, size))
    probs = rundir.save_probs(round_path / "probs" / f"{stem}.npz", probs, list(allowed))
    parts = filters.reliability(probs, mask, net_mask, previous)
    score = parts["score"] if base_score is None else float(np.clip((parts["score"] + base_score) / 2, 0, 1))
    ratio = filters.area_ratio(mask)
    return ImageRecord(
        score=score,
        changed=None if previous is None else filters.changed_fraction(mask, previous),
        area_ratio=ratio,
        margin=parts["margin"],
        agreement=parts["agreement"],
        stability=parts.get("stability"),
        in_area=filters.area_ok(ratio, config.filters.area_min, config.filters.area_max),
    )


def select_next(records: Mapping[str, ImageRecord], config: RunConfig) -> None:
    """Set ``train_next`` on every record: area filter, then drop the least reliable fraction."""
    chosen = set(
        filters.select_for_training(
            {s: r.score for s, r in records.items()},
            {s: r.in_area for s, r in records.items()},
            config.filters.drop_fraction,
        )
    )
    for s, r in records.items():
        r.train_next = s in chosen


def write_scores(round_path: Path, records: Mapping[str, ImageRecord], provenance: Mapping[str, Any]) -> None:
    rundir.write_json(
        round_path / "scores.json",
        {"provenance": dict(provenance), "images": {s: asdict(r) for s, r in records.items()}},
    )


def read_scores(round_path: Path) -> tuple[dict[str, ImageRecord], dict[str, Any]]:
    data = rundir.read_json(round_path / "scores.json")
    return {s: ImageRecord(**r) for s, r in data["images"].items()}, data["provenance"]


def summarise(records: Mapping[str, ImageRecord]) -> dict[str, Any]:
    """Label-free signals of a round: means of the per-image numbers."""

    def mean(vals: list[float | None]) -> float | None:
        present = [v for v in vals if v is not None]
        return float(np.mean(present)) if present else None

    rs = list(records.values())
    return {
        "reliability": mean([r.score for r in rs]),
        "changed": mean([r.changed for r in rs]),
        "margin": mean([r.margin for r in rs]),
        "agreement": mean([r.agreement for r in rs]),
        "stability": mean([r.stability for r in rs]),
        "in_area": float(np.mean([r.in_area for r in rs])) if rs else 0.0,
        "train_next": int(sum(r.train_next for r in rs)),
    }


def previous_mask(round_path: Path, stem: str) -> np.ndarray:
    return read_mask(round_path / "masks" / f"{stem}.png")
