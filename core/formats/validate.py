"""Turning a caller's mask (array or PNG path) into a checked ``(H, W) uint8`` class-index array."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from core.classmap import IGNORE_INDEX, ClassMap
from core.io.images import read_mask

MaskLike = np.ndarray | str | os.PathLike
"""A ``(H, W)`` integer/bool array of class indices, or the path of a class-index PNG."""


def as_mask(value: MaskLike, stem: str, classmap: ClassMap | None = None) -> np.ndarray:
    """A ``(H, W) uint8`` mask; values must be class indices of ``classmap`` or 255 (ignore).

    Raises ``ValueError`` naming ``stem`` for a wrong shape, dtype or unknown class index.
    """
    if isinstance(value, (str, os.PathLike)):
        arr = read_mask(Path(value))
    elif isinstance(value, np.ndarray):
        arr = value
    else:
        raise TypeError(f"mask {stem!r}: expected an array or a PNG path, got {type(value).__name__}")
    if arr.ndim != 2:
        raise ValueError(f"mask {stem!r}: expected shape (H, W), got {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    elif arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"mask {stem!r}: expected integer class indices, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() > IGNORE_INDEX):
            raise ValueError(f"mask {stem!r}: values must lie in 0..255, got {arr.min()}..{arr.max()}")
        arr = arr.astype(np.uint8)
    if classmap is not None:
        k = classmap.num_classes
        present = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
        bad = [int(v) for v in present if v >= k and v != IGNORE_INDEX]
        if bad:
            raise ValueError(
                f"mask {stem!r}: unknown class index(es) {bad}; the class map has {k} classes "
                f"(0..{k - 1}: {list(classmap.names)}) and 255 = ignore"
            )
    return np.ascontiguousarray(arr)
