"""What a route is: the ``Route`` record, the signatures of its ``run`` and ``for_image``, and
the user's prompt on one image (a box, clicks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.grabcut import Box, Point
from core.initial.result import InitialResult, InitialStream
from core.progress import Progress

__all__ = ["Box", "DatasetRun", "DatasetStream", "ImageRun", "Point", "Route"]


class DatasetRun(Protocol):
    """Round-0 masks of every image of ``dataset`` (``source`` only for routes that use one)."""

    def __call__(
        self, dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None
    ) -> InitialResult: ...


class DatasetStream(Protocol):
    """``run`` one image at a time (``InitialStream``), or ``None`` when this call cannot stream (then
    the caller uses ``run``)."""

    def __call__(
        self, dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None
    ) -> InitialStream | None: ...


class ImageRun(Protocol):
    """One image's ``(H, W)`` bool foreground at ``image``'s size and a score in [0, 1].

    ``image`` is ``(H, W, 3) uint8`` at full size, ``work`` the same image at working size;
    ``box`` and ``points`` (or ``None``) are in ``work``'s pixels.
    """

    def __call__(
        self,
        image: np.ndarray,
        work: np.ndarray,
        *,
        box: Box | None,
        points: Sequence[Point] | None,
        config: InitConfig,
    ) -> tuple[np.ndarray, float]: ...


@dataclass(frozen=True)
class Route:
    """One way of making initial masks, registered under ``name`` in ``core.initial.routes.ROUTES``."""

    name: str
    run: DatasetRun
    """Masks for a whole dataset."""
    for_image: ImageRun | None = None
    """Mask of one image for interactive tools; ``None`` = the route needs a whole dataset."""
    stream: DatasetStream | None = None
    """Masks for a whole dataset one image at a time (memory of a few images); ``None`` = use ``run``."""
    network: bool = False
    """Its masks are the argmax of a GFN trained on pseudo-labels (``RunConfig.init_postprocess``
    applies; an image with several labels gets its first)."""
