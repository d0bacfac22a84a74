"""``initial_mask_for_image``: one image at a time, for interactive tools (Label Studio)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.initial.config import InitConfig
from core.initial.resize import resize_longest
from core.initial.routes import INTERACTIVE_ROUTES, ROUTES
from core.initial.routes.base import Point


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    return image


def initial_mask_for_image(
    image: np.ndarray,
    class_index: int,
    route: str = "grabcut",
    box: Sequence[float] | None = None,
    points: Sequence[Point] | None = None,
    num_classes: int = 2,
    *,
    config: InitConfig = InitConfig(),
) -> tuple[np.ndarray, float]:
    """A mask for one image, optionally guided by a user box and clicks.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        class_index: class given to the foreground (1..num_classes-1).
        route: one of ``INTERACTIVE_ROUTES``: ``grabcut``/``auto`` (GrabCut in the box, with the
            clicks as sure fg/bg; with neither, seeded by the class-agnostic ImageNet CAM), ``cam``
            (class-agnostic CAM + dense CRF), ``otsu`` (Otsu against the border colour).
        box: ``(x0, y0, x1, y1)`` in full-image pixels.
        points: ``(x, y, label)`` in full-image pixels, label 1 = foreground, 0 = background.
        num_classes: K, for validating ``class_index``.

    Returns:
        ``(mask (H, W) uint8 with values {0, class_index}, score in [0, 1])``.
    """
    image = _check_image(image)
    for_image = ROUTES[route].for_image if route in INTERACTIVE_ROUTES else None
    if for_image is None:
        raise ValueError(f"unknown route {route!r} for a single image; valid routes: {list(INTERACTIVE_ROUTES)}")
    if not (isinstance(class_index, (int, np.integer)) and 1 <= int(class_index) < num_classes):
        raise ValueError(f"class_index must be an int in 1..{num_classes - 1}, got {class_index!r}")
    if box is not None and len(box) != 4:
        raise ValueError(f"box must be (x0, y0, x1, y1), got {box!r}")
    h, w = image.shape[:2]
    if points is not None:
        for p in points:
            if len(p) != 3:
                raise ValueError(f"points must be (x, y, label) triples, got {p!r}")
            if not (0 <= float(p[0]) < w and 0 <= float(p[1]) < h):
                raise ValueError(f"point ({p[0]}, {p[1]}) lies outside the image of size {w}x{h}")
    work = resize_longest(image, config.work_size)
    s = work.shape[1] / w
    wbox = None if box is None else tuple(float(v) * s for v in box)
    wpoints = (
        None
        if points is None
        else [
            (min(float(x) * s, work.shape[1] - 1), min(float(y) * s, work.shape[0] - 1), int(lab))
            for x, y, lab in points
        ]
    )
    fg, score = for_image(image, work, box=wbox, points=wpoints, config=config)
    return (fg * int(class_index)).astype(np.uint8), float(score)
