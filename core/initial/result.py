"""What every route returns: ``InitialResult``, built at full size by a ``Collector``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.initial.resize import resize_mask, resize_probs


@dataclass
class InitialResult:
    """Round-0 masks of a dataset.

    Attributes:
        masks: ``{stem: (H, W) uint8}`` class indices at each image's full size.
        probs: ``{stem: (K, H, W) float32}`` or ``None`` (``InitConfig.keep_probs=False`` or a
            route without probabilities).
        scores: ``{stem: float in [0, 1]}`` confidence of each mask.
        route: the route that ran: ``auto`` with a source reports ``transfer``; without one it stays
            ``auto`` and ``info["recipe"]`` names what ran.
        info: route details, e.g. ``n_simple`` / ``simple_stems`` for ``otsu``, ``seconds``.
        source_model: ``(network, its class map)`` when the route trained a source network that
            another run can reuse (``transfer`` from a labelled set), else ``None``.
    """

    masks: dict[str, np.ndarray]
    probs: dict[str, np.ndarray] | None
    scores: dict[str, float]
    route: str
    info: dict[str, Any] = field(default_factory=dict)
    source_model: tuple[Any, Any] | None = None


ImageMask = tuple[str, np.ndarray, np.ndarray | None, float]
"""One image of a route's result: ``(stem, mask (H, W) uint8, probs (K, H, W) float32 or None, score
in [0, 1])`` at the image's full size."""


def full_size(
    probs: np.ndarray, full_hw: tuple[int, int], mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Working-size ``probs`` (and optionally a hard ``mask``) at ``full_hw``: ``(mask (H, W) uint8,
    probs (K, H, W) float32)``, the mask the argmax unless given."""
    p = resize_probs(probs, full_hw)
    return (resize_mask(mask, full_hw) if mask is not None else p.argmax(0).astype(np.uint8)), p


@dataclass
class InitialStream:
    """Round-0 masks of a dataset one image at a time, in the dataset's order: a ``lazy`` stream holds
    only the images in flight, whatever the dataset's size.

    Attributes:
        images: ``ImageMask`` per image; the route's work runs as it is consumed.
        route, source_model: as in ``InitialResult``.
        info: as in ``InitialResult``; complete (``seconds`` included) once ``images`` is exhausted.
    """

    images: Iterator[ImageMask]
    route: str
    info: dict[str, Any] = field(default_factory=dict)
    source_model: tuple[Any, Any] | None = None
    has_probs: bool = True
    """The images carry probabilities (else every ``ImageMask``'s probs is ``None``)."""
    lazy: bool = True
    """The route's per-image work runs as ``images`` is consumed and is not reported to ``progress``
    (the consumer reports each image); ``False``: the route ran whole and reported its images."""

    @classmethod
    def of_result(cls, result: InitialResult, stems: Sequence[str]) -> InitialStream:
        """A whole ``result`` handed out image by image in the order of ``stems`` (each released from
        ``result`` as it goes); a stem without a mask raises ``ValueError`` when its turn comes."""

        def images() -> Iterator[ImageMask]:
            missing = [s for s in stems if s not in result.masks]
            if missing:
                raise ValueError(
                    f"initial route {result.route!r} returned no mask for {len(missing)} image(s): {missing[:5]}"
                )
            for stem in stems:
                probs = result.probs.pop(stem, None) if result.probs is not None else None
                yield stem, result.masks.pop(stem), probs, result.scores.get(stem, 0.5)

        return cls(
            images=images(),
            route=result.route,
            info=result.info,
            source_model=result.source_model,
            has_probs=bool(result.probs),
            lazy=False,
        )


class Collector:
    """Accumulates full-size results per stem."""

    def __init__(self, keep_probs: bool):
        self.masks: dict[str, np.ndarray] = {}
        self.probs: dict[str, np.ndarray] | None = {} if keep_probs else None
        self.scores: dict[str, float] = {}

    def add(
        self, stem: str, probs: np.ndarray, full_hw: tuple[int, int], score: float, mask: np.ndarray | None = None
    ) -> None:
        """Store working-size ``probs`` (and optionally a hard ``mask``) resized to ``full_hw``."""
        self.masks[stem], p = full_size(probs, full_hw, mask)
        if self.probs is not None:
            self.probs[stem] = p
        self.scores[stem] = float(np.clip(score, 0.0, 1.0))

    def result(self, route: str, info: dict) -> InitialResult:
        return InitialResult(masks=self.masks, probs=self.probs, scores=self.scores, route=route, info=info)
