"""Binary masks <-> COCO polygons, holes included.

What COCO polygons can and cannot express
-----------------------------------------
A COCO annotation's ``segmentation`` may be a list of polygons; ``pycocotools`` rasterises each
polygon with the even-odd rule and takes the UNION of the polygons. So a hole cannot be written
as a second polygon (the union would fill it again). We write each outer boundary and its holes
as ONE polygon: every hole is joined to the outer boundary by a zero-width slit (a segment
walked there and back). Under the even-odd rule the slit's two passes cancel and the hole stays
empty, so ``annToMask`` gives back the mask pixel for pixel (checked by the tests on random
masks). What is lost: a slit polygon is "weakly simple" (it touches itself along the slit);
tools that assume strictly simple polygons (e.g. some shapely operations, or editors that
re-fill every ring) may draw the slit as a hairline or fill the hole. Use RLE (the default)
when exactness matters to other tools.

Coordinates follow COCO (pixel ``i`` spans ``[i, i+1]``): the outline of a region runs through
the centres of the half-pixels just inside its border, 0.25 px inside the pixel edges, so it
rasterises back exactly and its vertices are exact multiples of 0.25.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

MIN_POLYGON_POINTS = 3


def _bridge(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """One polygon: ``outer`` with ``hole`` joined by a slit between their closest vertices.

    ``outer``: ``(N, 2)``; ``hole``: ``(M, 2)``; returns ``(N + M + 2, 2)``.
    """
    d = ((outer[:, None, :] - hole[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return np.concatenate([outer[: i + 1], hole[j:], hole[: j + 1], outer[i:]])


def mask_to_polygons(mask: np.ndarray, *, tolerance: float = 0.0) -> list[list[float]]:
    """COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` for a binary mask, one per outer boundary.

    ``mask``: ``(H, W)`` bool or 0/1. Holes are joined to their outer boundary by slits (see the
    module docstring). ``tolerance``: Douglas-Peucker simplification in pixels (0 = exact).
    Returns ``[]`` for an empty mask. Every polygon has at least 3 points (6 numbers).
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    m = mask.astype(bool)
    if not m.any():
        return []
    ys, xs = np.nonzero(m)
    y0, x0 = int(ys.min()), int(xs.min())
    crop = m[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1].astype(np.uint8)
    # 2x up-sampling: contours then run through half-pixel centres, strictly between the centres
    # of inside and outside pixels, which makes rasterisation exact.
    up = np.pad(np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1), 1)
    contours, hierarchy = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hier = hierarchy[0]

    def pts(k: int) -> np.ndarray:
        c = contours[k]
        if tolerance > 0:
            c = cv2.approxPolyDP(c, 2.0 * tolerance, True)
        return c[:, 0, :].astype(np.float64)

    polygons = []
    for k in range(len(contours)):
        if hier[k][3] != -1:  # a hole; handled with its parent
            continue
        poly = pts(k)
        child = hier[k][2]
        while child != -1:
            hole = pts(child)
            if len(hole) >= MIN_POLYGON_POINTS:
                poly = _bridge(poly, hole)
            child = hier[child][0]
        if len(poly) < MIN_POLYGON_POINTS:
            continue
        xy = (poly - 1.0) / 2.0 + 0.25 + np.array([x0, y0], dtype=np.float64)
        polygons.append([float(v) for v in xy.ravel()])
    return polygons


POLYGON_MARGIN = 1.0
"""How far outside the image a polygon vertex may lie, in image sizes: x in [-W, 2W], y in [-H, 2H].
Farther coordinates are refused: ``pycocotools`` turns them into integer overflows and crashes."""


def polygon_problem(polygon: object, height: int, width: int) -> str | None:
    """Why ``polygon`` cannot be a COCO polygon of a ``height x width`` image, or ``None`` when it can.

    A polygon is a flat list of at least 6 finite numbers ``[x0, y0, x1, y1, ...]`` (an even
    count) within ``POLYGON_MARGIN`` image sizes of the image.
    """
    if not isinstance(polygon, list) or len(polygon) < 2 * MIN_POLYGON_POINTS or len(polygon) % 2:
        return "a polygon must be a flat list of at least 6 numbers [x0, y0, x1, y1, ...] (an even count)"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in polygon):
        return "a polygon must hold numbers only"
    xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(xy).all():
        return "polygon coordinates must be finite (no NaN or infinity)"
    lo = -POLYGON_MARGIN * np.array([width, height], dtype=np.float64)
    hi = (1.0 + POLYGON_MARGIN) * np.array([width, height], dtype=np.float64)
    if (xy < lo).any() or (xy > hi).any():
        return (
            f"polygon coordinates x {xy[:, 0].min():g}..{xy[:, 0].max():g}, y {xy[:, 1].min():g}..{xy[:, 1].max():g} "
            f"lie too far outside the {width}x{height} (WxH) image (allowed x {lo[0]:g}..{hi[0]:g}, "
            f"y {lo[1]:g}..{hi[1]:g})"
        )
    return None


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons as ``pycocotools`` does (union of even-odd polygons); ``(H, W) bool``.

    Raises ``ValueError`` for a polygon ``polygon_problem`` refuses (checked before
    ``pycocotools`` sees it: it crashes on huge or non-finite coordinates).
    """
    from pycocotools import mask as mask_utils

    for poly in polygons:
        problem = polygon_problem(poly, height, width)
        if problem:
            raise ValueError(problem)
    if not polygons:
        return np.zeros((height, width), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in p] for p in polygons], height, width))
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)
