"""Image -> network input: ImageNet normalisation shared by training and prediction."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_input(images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """``(H, W, 3) uint8`` image(s) of one size -> ``(N, 3, H, W) float32`` normalised tensor."""
    arr = np.asarray(images) if not isinstance(images, np.ndarray) else images
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) RGB image(s), got shape {arr.shape}")
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std
