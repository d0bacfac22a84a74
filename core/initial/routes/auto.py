"""Route ``auto``: ``transfer`` when a source is given, else ``AUTO_RECIPE`` (measured best on
bench/initial_routes.py). The choice is made here, once, and recorded in ``info["auto"]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.result import InitialResult, InitialStream
from core.initial.routes import grabcut, transfer
from core.initial.routes.base import Box, Point
from core.initial.routes.maps import run_recipe, stream_recipe
from core.progress import Progress

AUTO_RECIPE = "fused"
"""What ``route="auto"`` runs without a source (chosen on bench/initial_routes.py): GrabCut in the
centred box seeded by the coarse map (class-agnostic top-k CAM, or the trained classifier's CAM
with several classes), fused 0.6/0.4 with the dense-CRF'd map, then dense CRF once more."""


def run(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialResult:
    """With a ``source``: the ``transfer`` route, reported as ``transfer``. Without: ``AUTO_RECIPE``
    on every image, reported as ``auto``. ``info["auto"]`` names what ran."""
    if source is not None:
        result = transfer.run(dataset, source=source, config=config, progress=progress)
        result.info["auto"] = "transfer"
        return result
    result = run_recipe(dataset, AUTO_RECIPE, config, progress, route="auto")
    result.info["auto"] = AUTO_RECIPE
    return result


def stream(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialStream | None:
    """``run`` one image at a time without a source; ``None`` with one (``transfer`` trains or loads a
    network for the whole set: use ``run``)."""
    if source is not None:
        return None
    result = stream_recipe(dataset, AUTO_RECIPE, config, progress, route="auto")
    result.info["auto"] = AUTO_RECIPE
    return result


def for_image(
    image: np.ndarray, work: np.ndarray, *, box: Box | None, points: Sequence[Point] | None, config: InitConfig
) -> tuple[np.ndarray, float]:
    """GrabCut in the user's box and clicks; with neither, ``AUTO_RECIPE`` on the ImageNet CAM."""
    return grabcut.prompted_grabcut(image, work, box=box, points=points, config=config, recipe=AUTO_RECIPE)
