"""Fully connected CRF (Krähenbühl & Koltun 2011) over per-pixel probabilities, via pydensecrf."""

from __future__ import annotations

import numpy as np


def _densecrf():
    try:
        import pydensecrf.densecrf as dcrf  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the dense CRF needs pydensecrf (pip install pydensecrf2); "
            f"import failed with: {exc}"
        ) from exc
    return dcrf


def dense_crf(image: np.ndarray, probs: np.ndarray, *, iters: int = 5, gauss_sxy: float = 3.0,
              gauss_compat: float = 3.0, bi_sxy: float = 40.0, bi_srgb: float = 13.0,
              bi_compat: float = 6.0, eps: float = 1e-5) -> np.ndarray:
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
    crf.addPairwiseBilateral(sxy=bi_sxy, srgb=bi_srgb, rgbim=np.require(image, np.uint8, ['C', 'W']), compat=bi_compat)
    q = np.asarray(crf.inference(int(iters)), dtype=np.float32).reshape(k, h, w)
    return q
