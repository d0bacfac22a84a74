"""``refine_mask``: one entry point over the post-processors (none, grabcut, crf, guided)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core.config import check_known_fields
from core.postprocess.crf import CRFParams, dense_crf, lift_legacy_crf
from core.postprocess.grabcut import grabcut_refine
from core.postprocess.guided import guided_refine

METHODS = ("none", "grabcut", "crf", "guided")


@dataclass(frozen=True, kw_only=True)
class PostprocessConfig:
    """Parameters of the post-processors; ``max_side`` bounds the working resolution.

    A run's are ``RunConfig.post.params`` (``core.refine.postchain`` passes them to every step)."""

    max_side: int = 400
    """Images larger than this are processed at this longest side and resized back."""
    grabcut_iters: int = 5
    grabcut_erode: float = 0.02
    grabcut_bg: float = 0.06
    grabcut_confident: float = 0.8
    crf: CRFParams = field(default_factory=CRFParams)
    """Dense-CRF parameters (the same ``CRFParams`` as the initial routes')."""
    guided_radius: int | None = None
    guided_eps: float = 1e-3
    mix: float = 0.6
    """GrabCut gives a hard mask; returned probs = mix * one-hot + (1 - mix) * input probs."""
    seed: int = 0

    def __post_init__(self) -> None:
        def integer(name: str, minimum: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"PostprocessConfig.{name} must be an int >= {minimum}, got {v!r}")

        integer("max_side", 16)
        integer("grabcut_iters", 1)
        integer("seed", 0)
        if self.guided_radius is not None:
            integer("guided_radius", 1)
        for name in ("grabcut_erode", "grabcut_bg", "grabcut_confident", "mix"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"PostprocessConfig.{name} must lie in [0, 1], got {v!r}")
        if not self.guided_eps > 0:
            raise ValueError(f"PostprocessConfig.guided_eps must be > 0, got {self.guided_eps!r}")
        if not isinstance(self.crf, CRFParams):
            raise TypeError(f"PostprocessConfig.crf must be a CRFParams, got {type(self.crf).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessConfig:
        """Build from a mapping (``crf`` nested, or the old flat ``crf_<name>`` keys); unknown keys are
        refused with the list of known ones."""
        kw = lift_legacy_crf(data)
        check_known_fields(cls, kw)
        if isinstance(kw.get("crf"), Mapping):
            kw["crf"] = CRFParams.from_dict(kw["crf"])
        return cls(**kw)


def _resize_stack(x: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(c, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for c in x])


def _onehot(mask: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((k, *mask.shape), np.float32)
    np.put_along_axis(out, np.where(mask == 255, 0, mask).astype(np.int64)[None], 1.0, axis=0)
    return out


def refine_mask(
    image: np.ndarray, probs: np.ndarray, method: str = "grabcut", *, config: PostprocessConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Post-process per-pixel probabilities into a cleaner mask.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        probs: ``(K, H, W)`` float32 probabilities (sum 1 over K), at the image's size.
        method: ``none`` (argmax), ``grabcut`` (GrabCut from the argmax mask: sure fg = eroded
            confident fg, sure bg = far from fg), ``crf`` (dense CRF), ``guided`` (guided filter).
        config: parameters (``PostprocessConfig()`` when omitted).

    Returns:
        ``(mask (H, W) uint8, probs (K, H, W) float32)``; ``mask`` is the argmax of ``probs``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown post-processing method {method!r}; valid methods: {list(METHODS)}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs must be (K, H, W) with H, W = {image.shape[:2]}, got {probs.shape}")
    cfg = config or PostprocessConfig()
    probs = probs.astype(np.float32, copy=False)
    k = probs.shape[0]
    if method == "none":
        return probs.argmax(0).astype(np.uint8), probs
    full_hw = image.shape[:2]
    scale = cfg.max_side / max(full_hw)
    if scale < 1.0:
        hw = (max(1, round(full_hw[0] * scale)), max(1, round(full_hw[1] * scale)))
        img = cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
        p = _resize_stack(probs, hw)
    else:
        img, p = image, probs
    if method == "crf":
        out = dense_crf(img, p, **cfg.crf.to_dict())
    elif method == "guided":
        out = guided_refine(img, p, radius=cfg.guided_radius, eps=cfg.guided_eps)
    else:  # grabcut
        m = grabcut_refine(
            img,
            p.argmax(0).astype(np.uint8),
            probs=p,
            iters=cfg.grabcut_iters,
            erode_frac=cfg.grabcut_erode,
            bg_frac=cfg.grabcut_bg,
            confident=cfg.grabcut_confident,
            seed=cfg.seed,
        )
        out = cfg.mix * _onehot(m, k) + (1.0 - cfg.mix) * p
    if out.shape[1:] != full_hw:
        out = _resize_stack(out, full_hw)
    out = np.clip(out, 0.0, None)
    out /= np.maximum(out.sum(0, keepdims=True), 1e-8)
    out = out.astype(np.float32)
    return out.argmax(0).astype(np.uint8), out
