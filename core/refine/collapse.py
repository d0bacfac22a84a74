"""The collapse guard: pure functions telling whether a round's masks collapsed.

A round *collapses* when its masks stop describing the objects its images are labelled with: images
that had an object come out empty, the foreground area jumps, the network is undecided (its
probabilities sit near 0.5 everywhere) or its reliability falls. Measured before this guard: 30
horse photos went from 0.79 mIoU (round 0) to 0.51 / 0.48 / 0.39, the last with 90% of the masks
empty, and the label-free rule kept round 2 (``docs/RESULTS.md``, "Collapsed rounds").

One implementation for every face: the run loop (``core.refine.runner``: a collapsed round is
never picked and stops the run; ``run.json`` records every verdict and the run's ``status``), which
the CLI and the FiftyOne operator report, and the Label Studio backend's training rounds (its
jobs module), which refuse to publish a collapsed model version.

Everything works on :class:`RoundSignals`, built from a round's per-image records
(``core.refine.records.ImageRecord`` or the dicts of ``scores.json``) or from plain masks. The
limits are ``RunConfig.stop``'s ``collapse_*`` settings (:class:`core.refine.sections.StopSection`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EMPTY_AREA = 0.005
"""A mask whose foreground covers less than this fraction of the image counts as empty (specks a
post-processor leaves behind included); a reference mask at or above it "had an object"."""

OK, DEGRADED, COLLAPSED = "ok", "degraded", "collapsed"
"""A run's ``status``: no round collapsed / some round collapsed and an earlier round was kept / the
kept masks are all or mostly empty."""

STATUSES = (OK, DEGRADED, COLLAPSED)


@dataclass(frozen=True, kw_only=True)
class RoundSignals:
    """What the guard reads of one round.

    ``areas``: ``{image: foreground area ratio}``; ``reliability``: the round's mean reliability;
    ``margin``: its mean probability margin. ``network``: the masks come from a trained network (a
    refinement round, a backend model version), so ``margin`` and ``reliability`` are comparable
    with other network rounds'; round 0's (an initial route's own scores) are not.
    """

    areas: Mapping[str, float]
    reliability: float | None = None
    margin: float | None = None
    network: bool = True

    @classmethod
    def from_records(cls, records: Mapping[str, Any], *, network: bool) -> RoundSignals:
        """From ``{image: record}`` (``ImageRecord`` or its dict: ``area_ratio``, ``score``, ``margin``)."""
        get = (lambda r, k: r[k]) if all(isinstance(r, Mapping) for r in records.values()) else getattr
        areas = {s: float(get(r, "area_ratio")) for s, r in records.items()}
        return cls(
            areas=areas,
            reliability=_mean([get(r, "score") for r in records.values()]),
            margin=_mean([get(r, "margin") for r in records.values()]),
            network=network,
        )

    @classmethod
    def from_masks(
        cls, masks: Mapping[str, np.ndarray], scores: Mapping[str, float] | None = None, *, network: bool
    ) -> RoundSignals:
        """From ``{image: (H, W) class-index mask}`` and optional per-image reliability scores."""
        from core.refine.filters import area_ratio

        areas = {s: area_ratio(np.asarray(m)) for s, m in masks.items()}
        rel = _mean(list(scores.values())) if scores else None
        return cls(areas=areas, reliability=rel, network=network)

    def empty_fraction(self) -> float:
        """Fraction of the images whose mask is empty (0.0 for no images)."""
        return float(np.mean([a < EMPTY_AREA for a in self.areas.values()])) if self.areas else 0.0

    def mean_area(self) -> float:
        return float(np.mean(list(self.areas.values()))) if self.areas else 0.0


@dataclass(frozen=True)
class Limits:
    """When a round counts as collapsed (``RunConfig.stop``'s ``collapse_*`` settings)."""

    emptied: float = 0.2
    area_factor: float = 2.0
    margin: float = 0.1
    reliability_drop: float = 0.15
    empty_status: float = 0.5

    @classmethod
    def from_stop(cls, stop: Any) -> Limits:
        """From a ``StopSection`` (or anything with its ``collapse_*`` attributes)."""
        return cls(
            emptied=stop.collapse_emptied,
            area_factor=stop.collapse_area_factor,
            margin=stop.collapse_margin,
            reliability_drop=stop.collapse_reliability_drop,
            empty_status=stop.collapse_empty_status,
        )


@dataclass(frozen=True)
class Verdict:
    """The guard's verdict on one round: ``reasons`` (one short sentence per failed check, empty when
    the round is fine) and the ``numbers`` the checks compared."""

    reasons: tuple[str, ...] = ()
    numbers: dict[str, float | None] = field(default_factory=dict)

    @property
    def collapsed(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"collapsed": self.collapsed, "reasons": list(self.reasons), "numbers": dict(self.numbers)}


def check_round(
    candidate: RoundSignals,
    reference: RoundSignals,
    limits: Limits = Limits(),
    *,
    network_reference: RoundSignals | None = None,
) -> Verdict:
    """Whether ``candidate`` collapsed against ``reference`` (round 0 of a run; the published labels
    of the backend), and, for the reliability check, against ``network_reference`` (the best earlier
    network round that did not collapse; ``reference`` itself when it is a network round).

    The checks (each a reason when it fails):

    - **emptied**: more than ``limits.emptied`` of the images whose reference mask holds an object
      (area >= ``EMPTY_AREA``) are empty now;
    - **area jump**: the mean foreground area left ``[ref / f, ref * f]``, ``f = limits.area_factor``;
    - **undecided**: a network round's mean probability margin is below ``limits.margin`` (its
      probabilities sit near 0.5: it has not learnt to tell object from background);
    - **reliability fell**: a network round's reliability is more than ``limits.reliability_drop``
      below the network reference's.
    """
    reasons: list[str] = []
    had = [s for s, a in reference.areas.items() if a >= EMPTY_AREA and s in candidate.areas]
    emptied = float(np.mean([candidate.areas[s] < EMPTY_AREA for s in had])) if had else 0.0
    if had and emptied > limits.emptied:
        reasons.append(
            f"{emptied:.0%} of the {len(had)} images that had an object are empty (limit {limits.emptied:.0%})"
        )
    ref_area, area = reference.mean_area(), candidate.mean_area()
    if ref_area >= EMPTY_AREA and not ref_area / limits.area_factor <= area <= ref_area * limits.area_factor:
        reasons.append(
            f"mean foreground area jumped from {ref_area:.3f} to {area:.3f} (limit x{limits.area_factor:g} either way)"
        )
    if candidate.network and candidate.margin is not None and candidate.margin < limits.margin:
        reasons.append(f"the network is undecided: mean probability margin {candidate.margin:.3f} < {limits.margin:g}")
    net_ref = network_reference if network_reference is not None else (reference if reference.network else None)
    drop = None
    if candidate.network and net_ref is not None and None not in (candidate.reliability, net_ref.reliability):
        drop = float(net_ref.reliability - candidate.reliability)  # type: ignore[operator]
        if drop > limits.reliability_drop:
            reasons.append(
                f"reliability fell from {net_ref.reliability:.3f} to {candidate.reliability:.3f} "
                f"(limit {limits.reliability_drop:g})"
            )
    numbers = {
        "emptied": emptied,
        "empty": candidate.empty_fraction(),
        "mean_area": area,
        "reference_area": ref_area,
        "margin": candidate.margin,
        "reliability_drop": drop,
    }
    return Verdict(tuple(reasons), numbers)


def check_rounds(rounds: Sequence[RoundSignals], limits: Limits = Limits()) -> list[Verdict]:
    """The verdict of every round of a run (``rounds[0]`` = round 0, the reference, never collapsed by
    comparison). The reliability check of a network round compares it with the best earlier network
    round that did not collapse."""
    if not rounds:
        return []
    verdicts = [Verdict()]
    best: RoundSignals | None = None
    for sig in rounds[1:]:
        v = check_round(sig, rounds[0], limits, network_reference=best)
        verdicts.append(v)
        sound = not v.collapsed and sig.network and sig.reliability is not None
        if sound and (best is None or best.reliability is None or sig.reliability > best.reliability):  # type: ignore[operator]
            best = sig
    return verdicts


def run_status(kept: RoundSignals, verdicts: Sequence[Verdict], limits: Limits = Limits()) -> str:
    """``"collapsed"`` when more than ``limits.empty_status`` of the kept masks are empty,
    ``"degraded"`` when some round collapsed (an earlier one was kept), else ``"ok"``."""
    if kept.areas and kept.empty_fraction() > limits.empty_status:
        return COLLAPSED
    return DEGRADED if any(v.collapsed for v in verdicts) else OK


def status_message(status: str, kept_round: int | None, verdicts: Sequence[Verdict], empty: float) -> str:
    """One line for the user about a run's ``status`` ("" when it is ``"ok"``); ``verdicts[i]`` is round
    i's, ``empty`` the fraction of empty kept masks."""
    bad = [f"round {i} collapsed ({v.reasons[0]})" for i, v in enumerate(verdicts) if v.collapsed]
    kept = "" if kept_round is None else f"round {kept_round}'s masks were kept"
    if status == COLLAPSED:
        parts = [f"the run collapsed: {empty:.0%} of the kept masks are empty", *bad[:1], kept]
    elif status == DEGRADED and bad:
        parts = [bad[0], kept]
    else:
        return ""
    return "; ".join(p for p in parts if p)


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None
