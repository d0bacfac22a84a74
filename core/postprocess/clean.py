"""Clean-up of a binary mask: small components dropped, small holes filled, optional opening."""

from __future__ import annotations

import cv2
import numpy as np


def clean_binary(
    mask: np.ndarray, *, min_rel_area: float = 0.1, hole_area: float = 0.005, open_px: int = 0
) -> np.ndarray:
    """Keep connected components of at least ``min_rel_area`` x the largest, fill holes smaller
    than ``hole_area`` x the image, optional opening. ``(h, w)`` bool -> bool."""
    m: np.ndarray = mask.astype(np.uint8)
    if open_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * open_px + 1, 2 * open_px + 1))
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.flatnonzero(areas >= min_rel_area * areas.max()) + 1
        m = np.isin(lab, keep).astype(np.uint8)
    if hole_area > 0:
        inv = (1 - m).astype(np.uint8)
        n, lab, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
        limit = hole_area * m.size
        h, w = m.shape
        for i in range(1, n):
            x, y, bw, bh, area = stats[i]
            touches = x == 0 or y == 0 or x + bw == w or y + bh == h
            if area < limit and not touches:
                m[lab == i] = 1
    return m.astype(bool)
