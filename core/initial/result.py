"""What every route returns: ``InitialResult``, built at full size by a ``Collector``."""

from __future__ import annotations

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
        p = resize_probs(probs, full_hw)
        self.masks[stem] = resize_mask(mask, full_hw) if mask is not None else p.argmax(0).astype(np.uint8)
        if self.probs is not None:
            self.probs[stem] = p
        self.scores[stem] = float(np.clip(score, 0.0, 1.0))

    def result(self, route: str, info: dict) -> InitialResult:
        return InitialResult(masks=self.masks, probs=self.probs, scores=self.scores, route=route, info=info)
