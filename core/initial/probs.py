"""Per-pixel class probabilities ``(K, h, w)`` from foreground maps and hard masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
