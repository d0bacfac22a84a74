"""Route ``grabcut`` (paper 002 III-B/C): GrabCut in a box, seeded by the coarse map; for a
single image, GrabCut in the user's box and clicks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.resize import resize_mask, resize_probs
from core.initial.result import InitialResult, InitialStream
from core.initial.routes.base import Box, Point
from core.initial.routes.maps import run_recipe, stream_recipe
from core.initial.scores import colour_confidence
from core.progress import Progress


def run(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialResult:
    """GrabCut seeded by the coarse map ``config.coarse`` in the box of ``config.box_mode`` for
    every image; ``source`` is not used."""
    return run_recipe(dataset, "grabcut", config, progress, route="grabcut")


def stream(dataset: Dataset, *, source: Any, config: InitConfig, progress: Progress | None) -> InitialStream:
    """``run`` one image at a time."""
    return stream_recipe(dataset, "grabcut", config, progress, route="grabcut")


def for_image(
    image: np.ndarray, work: np.ndarray, *, box: Box | None, points: Sequence[Point] | None, config: InitConfig
) -> tuple[np.ndarray, float]:
    """GrabCut in the box, with the clicks as sure fg/bg (see ``prompted_grabcut``)."""
    return prompted_grabcut(image, work, box=box, points=points, config=config, recipe="grabcut")


def prompted_grabcut(
    image: np.ndarray,
    work: np.ndarray,
    *,
    box: Box | None,
    points: Sequence[Point] | None,
    config: InitConfig,
    recipe: str,
) -> tuple[np.ndarray, float]:
    """Foreground of one image from a user box and/or clicks, else by ``recipe`` on a coarse map.

    Args:
        image: ``(H, W, 3) uint8`` at full size (for the size and the confidence).
        work: the image at working size.
        box, points: in ``work``'s pixels. With either, GrabCut in the box with the clicks as sure
            fg/bg (seeded by the class-agnostic ImageNet CAM when there is no box); with neither,
            ``recipe`` (``grabcut`` or ``fused``) on that CAM.

    Returns:
        ``(H, W)`` bool foreground and its colour confidence in [0, 1].
    """
    from core.initial.coarse import topk_map
    from core.initial.grabcut import grabcut_interactive
    from core.initial.pipeline import image_probs

    hw = image.shape[:2]
    if box is None and not points:
        cam = topk_map(work, config)
        probs, _, _ = image_probs(work, cam[None], [1], 2, recipe, config)
        fg = resize_probs(probs, hw).argmax(0).astype(bool)
    else:
        coarse = None if box is not None else topk_map(work, config)
        fg_work = grabcut_interactive(
            work,
            box=box,
            points=points,
            coarse=coarse,
            prob_fg=config.prob_fg_threshold,
            iters=config.grabcut_iters,
            seed=config.seed,
        )
        fg = resize_mask(fg_work.astype(np.uint8), hw).astype(bool)
    return fg, colour_confidence(image, fg)
