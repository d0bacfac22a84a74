"""GrabCut (Rother et al. 2004) seeded from a mask or a coarse map, with OpenCV."""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger(__name__)


def run_grabcut(image: np.ndarray, gc_mask: np.ndarray, *, iters: int = 5, seed: int = 0) -> np.ndarray:
    """Run ``cv2.grabCut`` in mask mode on an ``(H, W)`` map of ``cv2.GC_*`` values.

    Returns the boolean foreground ``(H, W)``. When the map lacks foreground or background
    candidates (GrabCut cannot fit both colour models), the initial probable/sure foreground
    is returned unchanged.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if gc_mask.shape != image.shape[:2]:
        raise ValueError(f"GrabCut mask {gc_mask.shape} does not match the image {image.shape[:2]}")
    m = np.ascontiguousarray(gc_mask.astype(np.uint8))
    fg0 = (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)
    n_fg = int(fg0.sum())
    if n_fg < 2 or n_fg > m.size - 2:
        return fg0
    cv2.setRNGSeed(seed)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    try:
        # rect is unused in mask mode; (0, 0, 0, 0) is what OpenCV makes of None
        cv2.grabCut(np.ascontiguousarray(image), m, (0, 0, 0, 0), bgd, fgd, int(iters), cv2.GC_INIT_WITH_MASK)
    except cv2.error as exc:  # degenerate colour statistics
        log.debug("GrabCut failed (%s); keeping the initial mask", exc)
        return fg0
    return (m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)


def _disc(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def grabcut_refine(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    probs: np.ndarray | None = None,
    iters: int = 5,
    erode_frac: float = 0.02,
    bg_frac: float = 0.06,
    confident: float = 0.8,
    seed: int = 0,
) -> np.ndarray:
    """GrabCut initialised from a class mask; returns the refined ``(H, W) uint8`` class mask.

    Seeds: sure foreground = the confident foreground (``probs`` of the pixel's class >=
    ``confident`` when given) eroded by ``erode_frac`` x the image diagonal; sure background =
    farther than ``bg_frac`` x the diagonal from any foreground; probable fg/bg elsewhere as in
    ``mask``. Pixels that become foreground take the class of the nearest original foreground
    pixel; 255 (ignore) pixels start as probable background.
    """
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the image {image.shape[:2]}")
    fg = (mask != 0) & (mask != 255)
    if not fg.any() or fg.all():
        return mask.copy()
    h, w = mask.shape
    diag = float(np.hypot(h, w))
    conf = fg
    if probs is not None:
        if probs.shape[1:] != mask.shape:
            raise ValueError(f"probs {probs.shape} do not match the mask {mask.shape}")
        cls = np.where(fg, mask, 0).astype(np.int64)
        conf = fg & (np.take_along_axis(probs, cls[None], 0)[0] >= confident)
    er = max(1, round(erode_frac * diag))
    sure_fg = cv2.erode(conf.astype(np.uint8), _disc(er)).astype(bool)
    dist = cv2.distanceTransform((~fg).astype(np.uint8), cv2.DIST_L2, 5)
    sure_bg = dist > bg_frac * diag
    gc = np.where(fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[sure_bg] = cv2.GC_BGD
    gc[sure_fg] = cv2.GC_FGD
    new_fg = run_grabcut(image, gc, iters=iters, seed=seed)
    out = np.where(new_fg, mask, 0).astype(np.uint8)
    grown = new_fg & ~fg
    if grown.any():
        # new foreground pixels take the class of the nearest original foreground pixel
        _, labels = cv2.distanceTransformWithLabels(
            (~fg).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        ys, xs = np.nonzero(fg)
        lut = np.zeros(labels.max() + 1, dtype=np.uint8)
        lut[labels[ys, xs]] = mask[ys, xs]
        out[grown] = lut[labels[grown]]
    keep_ignore = (mask == 255) & ~new_fg
    out[keep_ignore] = 255
    return out
