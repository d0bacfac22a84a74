"""Fully connected CRF (Krähenbühl & Koltun 2011) over per-pixel probabilities, via pydensecrf."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.config import check_known_fields

LEGACY_PREFIX = "crf_"
"""Configs saved before ``CRFParams`` held its fields flat, as ``crf_iters``, ``crf_gauss_sxy``, ..."""


@dataclass(frozen=True, kw_only=True)
class CRFParams:
    """Parameters of :func:`dense_crf`, one set shared by the initial routes (``InitConfig.crf``) and
    the rounds' post-processing (``PostprocessConfig.crf``). Defaults: DeepLab's CRF settings.

    Attributes:
        iters: mean-field iterations (0 returns the input probabilities' normalised copy).
        gauss_sxy / gauss_compat: spatial std (px) and weight of the smoothness kernel.
        bi_sxy / bi_srgb / bi_compat: spatial std (px), colour std and weight of the appearance kernel.
    """

    iters: int = 5
    gauss_sxy: float = 3.0
    gauss_compat: float = 3.0
    bi_sxy: float = 40.0
    bi_srgb: float = 13.0
    bi_compat: float = 6.0

    def __post_init__(self) -> None:
        if isinstance(self.iters, bool) or not isinstance(self.iters, int) or self.iters < 0:
            raise ValueError(f"crf.iters must be an int >= 0, got {self.iters!r}")
        for name in ("gauss_sxy", "gauss_compat", "bi_sxy", "bi_srgb", "bi_compat"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"crf.{name} must be a number >= 0, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CRFParams:
        """Build from a mapping; unknown keys are refused with the list of known ones."""
        check_known_fields(cls, data)
        return cls(**dict(data))


def lift_legacy_crf(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with old flat ``crf_<name>`` keys moved into ``data["crf"]`` (a dict, or a
    ``CRFParams``); a flat key wins over the same parameter in ``crf`` (it is the one-off override,
    e.g. ``--init-option crf_iters=3`` over a saved config)."""
    out = dict(data)
    flat = {k[len(LEGACY_PREFIX) :]: out.pop(k) for k in list(out) if k.startswith(LEGACY_PREFIX)}
    if not flat:
        return out
    crf = out.get("crf", {})
    crf = crf.to_dict() if isinstance(crf, CRFParams) else dict(crf)
    out["crf"] = {**crf, **flat}
    return out


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"the dense CRF needs pydensecrf (pip install pydensecrf2); import failed with: {exc}"
        ) from exc
    return dcrf


def dense_crf(
    image: np.ndarray,
    probs: np.ndarray,
    *,
    iters: int = 5,
    gauss_sxy: float = 3.0,
    gauss_compat: float = 3.0,
    bi_sxy: float = 40.0,
    bi_srgb: float = 13.0,
    bi_compat: float = 6.0,
    eps: float = 1e-5,
) -> np.ndarray:
    """Mean-field dense CRF: unary ``-log(probs)``, Gaussian (smoothness) + bilateral (appearance).

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        probs: ``(K, H, W)`` float, summing to 1 over K.
        iters: mean-field iterations.
        gauss_sxy / gauss_compat: spatial std (px) and weight of the smoothness kernel.
        bi_sxy / bi_srgb / bi_compat: spatial std (px), colour std and weight of the appearance kernel.

    Returns:
        ``(K, H, W) float32`` marginals.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(f"probs must be (K, H, W) matching the image {image.shape[:2]}, got {probs.shape}")
    dcrf = _densecrf()
    k, h, w = probs.shape
    p = np.clip(probs.astype(np.float32), eps, 1.0)
    p /= p.sum(0, keepdims=True)
    crf = dcrf.DenseCRF2D(w, h, k)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(p).reshape(k, -1)))
    crf.addPairwiseGaussian(sxy=gauss_sxy, compat=gauss_compat)
    crf.addPairwiseBilateral(sxy=bi_sxy, srgb=bi_srgb, rgbim=np.require(image, np.uint8, ["C", "W"]), compat=bi_compat)
    q = np.asarray(crf.inference(int(iters)), dtype=np.float32).reshape(k, h, w)
    return q
