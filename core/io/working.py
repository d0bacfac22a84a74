"""A run's pictures at a bounded size (its *working size*) and its masks between that size and the
picture's own.

A picture whose longer side exceeds a run's ``image_max_side`` is held at that longer side (the
aspect ratio kept, each side rounded); a picture at or below it is held as it is. ``WorkingImage``
names a picture file together with that bound; ``core.io.images.read_image`` decodes it at reduced
size (JPEG DCT scaling, then an exact resize) and every consumer of image paths (training,
prediction, post-processing workers) accepts it. Masks go to the original size when they are
written and back to the working size when they are read (:func:`to_size`, nearest neighbour at
pixel centres: the way back returns exactly the mask that was enlarged).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_IMAGE_MAX_SIDE = 2048
"""A run's default ``image_max_side``. Nothing the engine computes needs more: the rounds' network works
at 256 px (``RunConfig.max_side``), the initial routes at 320 (``InitConfig.work_size``), dense CRF and
GrabCut at 400 (``PostprocessConfig.max_side``); above those sizes a stage only resizes its result up.
At 2048 that last step is still 5x finer than the finest stage, so a mask enlarged to a 12000 x 9000
photo steps by 6 px where the network itself resolves 47 px; a picture is held in 9.4 MB (probabilities
of two classes in 25 MB) instead of 324 MB (864 MB) at that photo's size. Photos of up to about 4
megapixels (2048 x 1536) keep their own size and are labelled exactly as without the bound."""

__all__ = ["DEFAULT_IMAGE_MAX_SIDE", "WorkingImage", "check_max_side", "to_size", "working_hw"]


def check_max_side(name: str, value: object) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is ``None`` or an integer >= 16."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 16):
        raise ValueError(f"{name} must be None (pictures at their own size) or an integer >= 16, got {value!r}")


def working_hw(hw: tuple[int, ...], max_side: int | None) -> tuple[int, int]:
    """``(h, w)`` of a picture of ``hw = (H, W)`` held at a longer side of at most ``max_side``.

    ``hw`` itself when ``max_side`` is ``None`` or the picture is not larger; else the longer side is
    ``max_side`` and the other ``round(side * max_side / longer)`` (at least 1)."""
    h, w = int(hw[0]), int(hw[1])
    if max_side is None or max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _centres(n_out: int, n_in: int) -> np.ndarray:
    """For each of ``n_out`` output pixels, the input pixel (of ``n_in``) under its centre, in exact
    integer arithmetic: ``floor((i + 0.5) * n_in / n_out)``."""
    i = np.arange(n_out, dtype=np.int64)
    return (2 * i + 1) * n_in // (2 * n_out)


def to_size(mask: np.ndarray, hw: tuple[int, ...]) -> np.ndarray:
    """``mask (h, w)`` (any dtype) resized to ``hw = (H, W)`` by nearest neighbour at pixel centres.

    Returns ``mask`` itself when it already has that size. Enlarging and then shrinking back gives the
    original mask exactly (each shrunk pixel's centre falls inside one of the copies of its own pixel),
    so a mask written at a picture's size and read back at the working size is the one computed there.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    h, w = int(hw[0]), int(hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"target size must be positive, got {hw}")
    if mask.shape == (h, w):
        return mask
    rows = _centres(h, mask.shape[0])
    cols = _centres(w, mask.shape[1])
    return np.ascontiguousarray(mask[rows][:, cols])


@dataclass(frozen=True)
class WorkingImage:
    """A picture file to be held at a longer side of at most ``max_side`` (``working_hw``).

    Path-like (``os.fspath`` gives the file), so it goes wherever an image path goes;
    ``core.io.images.read_image`` and the training and prediction readers decode it at the working
    size, ``image_size`` still gives the file's own size.
    """

    path: Path
    max_side: int | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        check_max_side("max_side", self.max_side)

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)
