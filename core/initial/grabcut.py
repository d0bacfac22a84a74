"""GrabCut route (paper 002 III-B/C): coarse map -> box -> GrabCut seeded by the map."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from core.postprocess.clean import clean_binary
from core.postprocess.grabcut import run_grabcut

Box = tuple[float, float, float, float]
"""A user's box ``(x0, y0, x1, y1)`` in pixels, exclusive ends."""

Point = tuple[float, float, int]
"""A user's click ``(x, y, label)`` in pixels, label 1 = foreground, 0 = background."""


def box_from_map(coarse: np.ndarray, threshold: float, margin: float) -> tuple[int, int, int, int] | None:
    """Bounding box ``(x0, y0, x1, y1)`` (exclusive ends) of the main components of
    ``coarse >= threshold``, grown by ``margin`` x the image side; ``None`` if nothing passes."""
    m = clean_binary(coarse >= threshold, min_rel_area=0.2, hole_area=0.0)
    ys, xs = np.nonzero(m)
    if ys.size == 0:
        return None
    h, w = coarse.shape
    dy, dx = round(margin * h), round(margin * w)
    return (max(0, xs.min() - dx), max(0, ys.min() - dy), min(w, xs.max() + 1 + dx), min(h, ys.max() + 1 + dy))


def seed_mask(
    coarse: np.ndarray, box: tuple[int, int, int, int], *, prob_fg: float, sure_fg: float = 1.1
) -> np.ndarray:
    """GrabCut mask: sure bg outside ``box``; inside, probable fg where ``coarse >= prob_fg``,
    probable bg elsewhere; sure fg where ``coarse >= sure_fg``."""
    x0, y0, x1, y1 = box
    gc = np.full(coarse.shape, cv2.GC_BGD, np.uint8)
    inside = np.zeros(coarse.shape, bool)
    inside[y0:y1, x0:x1] = True
    gc[inside] = np.where(coarse[inside] >= prob_fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    gc[inside & (coarse >= sure_fg)] = cv2.GC_FGD
    return gc


def centre_box(hw: tuple[int, int], side: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of a centred box of ``side`` x the image sides."""
    h, w = hw
    y0, x0 = round(h * (1 - side) / 2), round(w * (1 - side) / 2)
    return x0, y0, w - x0, h - y0


def union_box(a: tuple[int, int, int, int] | None, b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    if a is None:
        return b
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def grabcut_from_map(
    image: np.ndarray,
    coarse: np.ndarray,
    *,
    box_threshold: float,
    box_margin: float,
    prob_fg: float,
    sure_fg: float = 1.1,
    iters: int = 5,
    seed: int = 0,
    fixed_box: tuple[int, int, int, int] | None = None,
    union: bool = False,
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Foreground ``(h, w)`` bool from an ``(h, w)`` coarse map in [0, 1], and the box used.

    The box is the map's (``fixed_box is None``), ``fixed_box`` (e.g. a centred box), or with
    ``union`` both united. Inside it the map seeds probable fg/bg; outside is sure background.
    """
    if fixed_box is None:
        box = box_from_map(coarse, box_threshold, box_margin)
    elif union:
        box = union_box(box_from_map(coarse, box_threshold, box_margin), fixed_box)
    else:
        box = fixed_box
    if box is None:
        return np.zeros(coarse.shape, bool), None
    gc = seed_mask(coarse, box, prob_fg=prob_fg, sure_fg=sure_fg)
    fg = run_grabcut(image, gc, iters=iters, seed=seed)
    return clean_binary(fg, min_rel_area=0.1), box


def grabcut_interactive(
    image: np.ndarray,
    *,
    box: Box | None = None,
    points: Sequence[Point] | None = None,
    coarse: np.ndarray | None = None,
    prob_fg: float = 0.3,
    iters: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """GrabCut from a user box and/or clicks.

    Args:
        image: ``(h, w, 3) uint8``.
        box: ``(x0, y0, x1, y1)`` in pixels: outside is sure background, inside probable
            foreground (or the coarse map's probable fg/bg when given).
        points: ``(x, y, label)`` with label 1 = foreground, 0 = background; each marks a small
            disc as sure foreground/background.
        coarse: optional ``(h, w)`` map in [0, 1] seeding probable fg/bg where no box says otherwise.

    Returns:
        ``(h, w)`` bool foreground.
    """
    h, w = image.shape[:2]
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"box must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box}")
        bx = (
            int(np.clip(np.floor(x0), 0, w - 1)),
            int(np.clip(np.floor(y0), 0, h - 1)),
            int(np.clip(np.ceil(x1), 1, w)),
            int(np.clip(np.ceil(y1), 1, h)),
        )
        if coarse is None:
            gc = seed_mask(np.ones((h, w), np.float32), bx, prob_fg=0.5)
        else:
            gc = seed_mask(coarse, bx, prob_fg=prob_fg)
    elif coarse is not None:
        gc = np.where(coarse >= prob_fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    else:
        gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    if points:
        r = max(2, round(0.015 * max(h, w)))
        pos = [(x, y) for x, y, lab in points if int(lab) == 1]
        if box is None and coarse is None and pos:
            # no prior at all: probable foreground around the positive clicks
            xs, ys = [p[0] for p in pos], [p[1] for p in pos]
            pad = 0.15 * max(h, w)
            x0, x1 = int(max(0, min(xs) - pad)), int(min(w, max(xs) + pad + 1))
            y0, y1 = int(max(0, min(ys) - pad)), int(min(h, max(ys) + pad + 1))
            gc[y0:y1, x0:x1] = cv2.GC_PR_FGD
        for x, y, lab in points:
            if int(lab) not in (0, 1):
                raise ValueError(f"point labels must be 1 (foreground) or 0 (background), got {lab!r}")
            if not (0 <= x < w and 0 <= y < h):
                raise ValueError(f"point ({x}, {y}) lies outside the image of size {w}x{h}")
            cv2.circle(gc, (round(x), round(y)), r, int(cv2.GC_FGD if int(lab) == 1 else cv2.GC_BGD), -1)
    return run_grabcut(image, gc, iters=iters, seed=seed)
