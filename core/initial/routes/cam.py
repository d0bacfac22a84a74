"""Route ``cam`` (paper 001 IV-A 3): class activation maps -> probabilities -> dense CRF -> argmax."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.resize import resize_probs
from core.initial.result import InitialResult, InitialStream
from core.initial.routes.base import Box, Point
from core.initial.routes.maps import run_recipe, stream_recipe
from core.initial.scores import colour_confidence
from core.progress import Progress


def run(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialResult:
    """Class CAMs (ImageNet classes mapped from the class name, or a classifier trained on the
    labels, see ``InitConfig.cam_source``) + dense CRF for every image; ``source`` is not used."""
    return run_recipe(dataset, "cam", config, progress, route="cam")


def stream(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialStream:
    """``run`` one image at a time."""
    return stream_recipe(dataset, "cam", config, progress, route="cam")


def for_image(
    image: np.ndarray, work: np.ndarray, *, box: Box | None, points: Sequence[Point] | None, config: InitConfig
) -> tuple[np.ndarray, float]:
    """Class-agnostic ImageNet CAM of ``work`` + dense CRF; the user's box and clicks are not used.

    Returns the ``(H, W)`` bool foreground at ``image``'s size and its colour confidence in [0, 1].
    """
    from core.initial.cam import cam_probs, crf
    from core.initial.coarse import topk_map

    cam = topk_map(work, config)
    q = crf(work, cam_probs(cam[None], [1], 2, config.bg_power), config)
    fg = resize_probs(q, image.shape[:2]).argmax(0).astype(bool)
    return fg, colour_confidence(image, fg)
