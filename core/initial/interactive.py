"""``initial_mask_for_image``: one image at a time, for interactive tools (Label Studio)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from core.initial.common import colour_confidence, resize_longest, resize_mask, resize_probs
from core.initial.config import InitConfig

INTERACTIVE_ROUTES = ("auto", "grabcut", "cam", "otsu")

Point = tuple[float, float, int]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    return image


def _imagenet_map(work: np.ndarray, cfg: InitConfig) -> np.ndarray:
    from core.initial.imagenet import ImagenetCAM

    cam = ImagenetCAM(size=cfg.cam_size, scales=cfg.cam_scales, flip=cfg.cam_flip,
                      output_stride=cfg.cam_output_stride, top_k=cfg.cam_top_k)
    return cam.maps(work, None)[0]


def initial_mask_for_image(image: np.ndarray, class_index: int, route: str = "grabcut", box: Sequence[float] | None = None,
                           points: Sequence[Point] | None = None, num_classes: int = 2, *,
                           config: InitConfig = InitConfig()) -> tuple[np.ndarray, float]:
    """A mask for one image, optionally guided by a user box and clicks.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        class_index: class given to the foreground (1..num_classes-1).
        route: ``grabcut``/``auto`` (GrabCut in the box, with the clicks as sure fg/bg; with neither,
            seeded by the class-agnostic ImageNet CAM), ``cam`` (class-agnostic CAM + dense CRF),
            ``otsu`` (Otsu against the border colour).
        box: ``(x0, y0, x1, y1)`` in full-image pixels.
        points: ``(x, y, label)`` in full-image pixels, label 1 = foreground, 0 = background.
        num_classes: K, for validating ``class_index``.

    Returns:
        ``(mask (H, W) uint8 with values {0, class_index}, score in [0, 1])``.
    """
    from core.initial.cam import cam_probs, crf
    from core.initial.grabcut import grabcut_interactive
    from core.initial.otsu import otsu_mask
    from core.initial.pipeline import image_probs

    image = _check_image(image)
    if route not in INTERACTIVE_ROUTES:
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
    wpoints = None if points is None else [(min(float(x) * s, work.shape[1] - 1), min(float(y) * s, work.shape[0] - 1),
                                            int(lab)) for x, y, lab in points]
    if route == "otsu":
        fg, stats = otsu_mask(work, config)
        return resize_mask(fg.astype(np.uint8) * int(class_index), (h, w)), float(stats.separability)
    if route == "cam":
        cam = _imagenet_map(work, config)
        q = crf(work, cam_probs(cam[None], [1], 2, config.bg_power), config)
        fg = resize_probs(q, (h, w)).argmax(0).astype(bool)
        return (fg * int(class_index)).astype(np.uint8), float(colour_confidence(image, fg))
    if wbox is None and not wpoints:
        cam = _imagenet_map(work, config)
        kind = "fused" if route == "auto" else "grabcut"
        probs, _, _ = image_probs(work, cam[None], [1], 2, kind, config)
        fg = resize_probs(probs, (h, w)).argmax(0).astype(bool)
    else:
        coarse = None if wbox is not None else _imagenet_map(work, config)
        fg_work = grabcut_interactive(work, box=wbox, points=wpoints, coarse=coarse,
                                      prob_fg=config.prob_fg_threshold, iters=config.grabcut_iters, seed=config.seed)
        fg = resize_mask(fg_work.astype(np.uint8), (h, w)).astype(bool)
    return (fg * int(class_index)).astype(np.uint8), float(colour_confidence(image, fg))
