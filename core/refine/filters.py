"""The filters between rounds: category consistency, area ratio, reliability, training labels.

All functions are pure numpy on one image: masks ``(H, W) uint8`` class indices (0 = background,
255 = ignore), probabilities ``(K, H, W) float32`` summing to 1 over K.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np

from core.classmap import IGNORE_INDEX
from core.refine.config import CONSISTENCY


def _check_mask(mask: np.ndarray, name: str = "mask") -> None:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(f"{name} must be an (H, W) array, got {getattr(mask, 'shape', type(mask).__name__)}")


def _check_probs(probs: np.ndarray) -> None:
    if not isinstance(probs, np.ndarray) or probs.ndim != 3 or probs.shape[0] < 2:
        raise ValueError(
            f"probs must be a (K, H, W) array with K >= 2, got {getattr(probs, 'shape', type(probs).__name__)}"
        )


def allowed_classes(labels: Iterable[int], num_classes: int) -> list[int]:
    """Background plus the image's own class indices (sorted); raises on an index out of range."""
    out = {0}
    for c in labels:
        if not 0 < int(c) < num_classes:
            raise ValueError(f"class index {c} out of range 1..{num_classes - 1}")
        out.add(int(c))
    return sorted(out)


# ---------------------------------------------------------------- category consistency
def consistent_mask(mask: np.ndarray, allowed: Sequence[int]) -> np.ndarray:
    """Category consistency (paper 002): pixels of any class not in ``allowed`` become background.

    Ignore (255) stays ignore. Returns a new ``(H, W) uint8`` mask.
    """
    _check_mask(mask)
    keep = np.isin(mask, [*allowed, IGNORE_INDEX])
    return np.where(keep, mask, 0).astype(np.uint8)


def consistent_probs(probs: np.ndarray, allowed: Sequence[int], mode: str = "objectness") -> np.ndarray:
    """Category consistency on probabilities: only background and the image's classes keep mass.

    - ``"objectness"`` (default): the image-level label says *what* the object is, the network
      says *where*: all foreground mass ``1 - p[0]`` goes to the image's classes, split in
      proportion to their own probabilities (evenly where they have none). A network that cannot
      yet tell the classes apart (few images per class) still finds the object.
    - ``"background"`` (paper 002's rule taken literally): the mass of every other class moves to
      background.

    Either way no other class can survive, and :func:`consistent_mask` turns any other-class pixel a
    post-processor might produce into background. ``probs`` ``(K, H, W)``; returns a new float32
    array summing to 1 over K.
    """
    _check_probs(probs)
    if mode not in CONSISTENCY:
        raise ValueError(f"consistency mode {mode!r} is unknown; choose one of {list(CONSISTENCY)}")
    out = probs.astype(np.float32, copy=True)
    own = [k for k in allowed if k != 0]
    drop = [k for k in range(1, probs.shape[0]) if k not in set(allowed)]
    if not drop:
        return out
    if mode == "background" or not own:
        out[0] += out[drop].sum(axis=0)
        out[drop] = 0.0
        return out
    fg = 1.0 - out[0]
    out[drop] = 0.0
    share = out[own].sum(axis=0)
    even = share <= 1e-6
    weights = np.where(even[None], 1.0 / len(own), out[own] / np.where(even, 1.0, share)[None])
    out[own] = weights * fg[None]
    return out


# ---------------------------------------------------------------- area ratio
def area_ratio(mask: np.ndarray) -> float:
    """``S_annotation / S_image`` (paper 001 eq. 6): foreground pixels over labelled pixels, in [0, 1]."""
    _check_mask(mask)
    labelled = mask != IGNORE_INDEX
    n = int(labelled.sum())
    if n == 0:
        return 0.0
    return float(((mask > 0) & labelled).sum() / n)


def area_ok(ratio: float, area_min: float, area_max: float) -> bool:
    """Whether an image takes part in the next round's training (area ratio in [min, max])."""
    return area_min <= ratio <= area_max


# ---------------------------------------------------------------- reliability
def margin_map(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per pixel: ``(H, W) float32`` in [0, 1]."""
    _check_probs(probs)
    part = np.partition(probs, probs.shape[0] - 2, axis=0)
    return (part[-1] - part[-2]).astype(np.float32)


def foreground_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Class-aware IoU of the foregrounds of two masks: ``|a == b, foreground| / |a or b foreground|``.

    1.0 when both are empty (all background); ignore pixels (255) in either are left out.
    """
    _check_mask(a, "a")
    _check_mask(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    valid = (a != IGNORE_INDEX) & (b != IGNORE_INDEX)
    union = ((a > 0) | (b > 0)) & valid
    n = int(union.sum())
    if n == 0:
        return 1.0
    return float(((a == b) & union).sum() / n)


def changed_fraction(mask: np.ndarray, previous: np.ndarray | None) -> float:
    """Fraction of pixels whose class differs from ``previous`` (1.0 when there is none)."""
    _check_mask(mask)
    if previous is None:
        return 1.0
    if previous.shape != mask.shape:
        raise ValueError(f"masks differ in shape: {mask.shape} vs {previous.shape}")
    return float((mask != previous).mean())


def margin_score(probs: np.ndarray) -> float:
    """Mean probability margin over the candidate object region (pixels where some foreground class
    has probability >= 0.1), in [0, 1]; 0.0 when there is no candidate region at all.

    Background far from any object is easy and would swamp a whole-image mean.
    """
    m = margin_map(probs)
    region = probs[1:].max(axis=0) >= 0.1
    if not region.any():
        return 0.0
    return float(m[region].mean())


def reliability(
    probs: np.ndarray, mask: np.ndarray, net_mask: np.ndarray, previous: np.ndarray | None
) -> dict[str, float]:
    """Per-mask reliability in [0, 1] and its parts.

    - ``margin``: :func:`margin_score` of the (fused) probabilities;
    - ``agreement``: :func:`foreground_agreement` between the network's argmax ``net_mask`` and the
      post-processed ``mask``;
    - ``stability``: agreement between ``mask`` and the previous round's mask (omitted without one).

    ``score`` is the mean of the parts present.
    """
    parts = {"margin": margin_score(probs), "agreement": foreground_agreement(mask, net_mask)}
    if previous is not None:
        parts["stability"] = foreground_agreement(mask, previous)
    parts["score"] = float(np.clip(np.mean(list(parts.values())), 0.0, 1.0))
    return parts


# ---------------------------------------------------------------- training labels
def boundary_band(mask: np.ndarray, width: int) -> np.ndarray:
    """``(H, W) bool``: pixels within ``width`` px of a class boundary of ``mask`` (empty if width 0)."""
    _check_mask(mask)
    if width <= 0:
        return np.zeros(mask.shape, dtype=bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    hi = cv2.dilate(mask, kernel)
    lo = cv2.erode(mask, kernel)
    return hi != lo


def band_pixels(shape: tuple[int, int], fraction: float) -> int:
    """Band half-width in pixels for an image of ``shape``: ``fraction`` of the longer side, >= 1 if > 0."""
    if fraction <= 0:
        return 0
    return max(1, round(fraction * max(shape)))


def training_label(
    mask: np.ndarray, probs: np.ndarray | None, *, ignore_margin: float, band_fraction: float
) -> np.ndarray:
    """The label a round trains on: ``mask`` with unreliable pixels set to 255.

    Ignored: pixels where ``argmax(probs)`` disagrees with ``mask`` (network vs post-processor),
    pixels whose probability margin is below ``ignore_margin``, and a band of
    ``band_pixels(shape, band_fraction)`` px around every boundary of ``mask``.
    """
    _check_mask(mask)
    out = mask.copy()
    if probs is not None:
        _check_probs(probs)
        if probs.shape[1:] != mask.shape:
            raise ValueError(f"probs {probs.shape} do not match mask {mask.shape}")
        out[probs.argmax(axis=0) != mask] = IGNORE_INDEX
        if ignore_margin > 0:
            out[margin_map(probs) < ignore_margin] = IGNORE_INDEX
    out[boundary_band(mask, band_pixels(mask.shape, band_fraction))] = IGNORE_INDEX
    return out


def select_for_training(scores: Mapping[str, float], in_area: Mapping[str, bool], drop_fraction: float) -> list[str]:
    """Stems that train the next round: area ratio accepted, minus the least reliable ``drop_fraction``.

    Ties are broken by stem so the choice is deterministic. Never returns an empty list when
    ``scores`` is non-empty: if no image passes the area filter, the most reliable ones are used.
    """
    if not 0.0 <= drop_fraction < 1.0:
        raise ValueError(f"drop_fraction must lie in [0, 1), got {drop_fraction}")
    pool = [s for s in scores if in_area.get(s, False)] or list(scores)
    ranked = sorted(pool, key=lambda s: (-float(scores[s]), s))
    keep = max(1, round(len(ranked) * (1.0 - drop_fraction))) if ranked else 0
    chosen = set(ranked[:keep])
    return [s for s in scores if s in chosen]
