"""Small helpers shared by the routes: working size, labels, probabilities, clean-up."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator, Sequence

import cv2
import numpy as np

from core.classmap import ClassMap
from core.data.dataset import Sample

log = logging.getLogger(__name__)


def resize_longest(image: np.ndarray, size: int, *, upscale: bool = False) -> np.ndarray:
    """Resize ``(H, W, C)`` or ``(H, W)`` so the longest side is ``size`` (area / linear)."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale == 1.0 or (scale > 1.0 and not upscale):
        return image
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, (nw, nh), interpolation=interp)


def resize_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an ``(h, w)`` mask to ``hw = (H, W)``."""
    if mask.shape[:2] == tuple(hw):
        return mask
    return cv2.resize(mask, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)


def resize_map(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``(h, w)`` map or a ``(K, h, w)`` stack to ``(…, H, W)`` float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-2:] == tuple(hw):
        return x
    if x.ndim == 2:
        return cv2.resize(x, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return np.stack([cv2.resize(c, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for c in x])


def resize_probs(probs: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(K, h, w)`` probabilities, renormalised to sum to 1 over K."""
    out = resize_map(probs, hw)
    out = np.clip(out, 0.0, None)
    out /= np.maximum(out.sum(0, keepdims=True), 1e-8)
    return out.astype(np.float32)


def image_classes(sample: Sample, classmap: ClassMap) -> list[int]:
    """Class indices of the sample's image-level labels; raises naming the image if it has none."""
    if not sample.labels:
        raise ValueError(
            f"image {sample.image_path} (stem {sample.stem!r}) has no image-level label; every image needs "
            f"one of {list(classmap.foreground)} to get an initial mask"
        )
    return [classmap.index(name) for name in sample.labels]


def check_labels(samples: Sequence[Sample], classmap: ClassMap) -> None:
    """Fail early, before any heavy work, when an image has no label."""
    for s in samples:
        image_classes(s, classmap)


def fg_to_probs(p_fg: np.ndarray, class_index: int, num_classes: int) -> np.ndarray:
    """``(h, w)`` foreground probability -> ``(K, h, w)``: background 1-p, ``class_index`` p."""
    if not 1 <= class_index < num_classes:
        raise ValueError(f"class index must be in 1..{num_classes - 1}, got {class_index}")
    p = np.clip(np.asarray(p_fg, dtype=np.float32), 0.0, 1.0)
    out = np.zeros((num_classes, *p.shape), dtype=np.float32)
    out[0] = 1.0 - p
    out[class_index] = p
    return out


def onehot(mask: np.ndarray, num_classes: int, soft: float = 0.0) -> np.ndarray:
    """``(h, w)`` class mask -> ``(K, h, w)`` probabilities, ``soft`` mass spread over the others."""
    out = np.full((num_classes, *mask.shape), soft / max(num_classes - 1, 1), dtype=np.float32)
    m = np.where(mask == 255, 0, mask).astype(np.int64)
    np.put_along_axis(out, m[None], 1.0 - soft, axis=0)
    return out


def keep_classes(probs: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Category consistency: the mass of classes not in ``classes`` moves to background (0)."""
    out = probs.copy()
    allowed = np.zeros(out.shape[0], dtype=bool)
    allowed[0] = True
    allowed[list(classes)] = True
    out[0] += out[~allowed].sum(0)
    out[~allowed] = 0.0
    return out


def margin_confidence(probs: np.ndarray) -> float:
    """Mean over pixels of (top-1 minus top-2 probability) of ``(K, h, w)`` probs, in [0, 1]."""
    if probs.shape[0] < 2:
        return 1.0
    part = np.sort(probs, axis=0)
    return float(np.clip((part[-1] - part[-2]).mean(), 0.0, 1.0))


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def clean_binary(mask: np.ndarray, *, min_rel_area: float = 0.1, hole_area: float = 0.005,
                 open_px: int = 0) -> np.ndarray:
    """Keep connected components of at least ``min_rel_area`` x the largest, fill holes smaller
    than ``hole_area`` x the image, optional opening. ``(h, w)`` bool -> bool."""
    m = mask.astype(np.uint8)
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


def colour_confidence(image: np.ndarray, fg: np.ndarray, bins: int = 16) -> float:
    """How well colour histograms of fg and bg explain a binary mask, in [0, 1].

    Mean posterior of each pixel's own label under fg/bg colour histograms (``bins``^3),
    mapped from [0.5, 1] to [0, 1]; 0 for an empty or full mask.
    """
    fg = fg.astype(bool)
    if fg.all() or not fg.any():
        return 0.0
    q = (image.astype(np.int32) * bins) // 256
    idx = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    hf = np.bincount(idx[fg], minlength=bins**3).astype(np.float64) + 0.5
    hb = np.bincount(idx[~fg], minlength=bins**3).astype(np.float64) + 0.5
    pf = hf[idx] / hf.sum()
    pb = hb[idx] / hb.sum()
    prior = fg.mean()
    post_fg = pf * prior / (pf * prior + pb * (1 - prior))
    own = np.where(fg, post_fg, 1.0 - post_fg).mean()
    return float(np.clip(2.0 * own - 1.0, 0.0, 1.0))


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op threads for the block and restore them afterwards."""
    if n is None:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
