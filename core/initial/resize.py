"""Working size and back: routes work at a longest side of ``InitConfig.work_size`` and return
their masks and probabilities at each image's full size."""

from __future__ import annotations

import cv2
import numpy as np


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
