"""Training pairs as a lazily-loading torch ``Dataset`` with identical augmentation on image and mask."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from core.classmap import IGNORE_INDEX
from core.io.images import read_image, read_mask
from core.io.working import WorkingImage, to_size, working_hw
from core.network.preprocess import to_input

ImageLike = str | os.PathLike | np.ndarray
Pair = tuple[ImageLike, ImageLike]


def describe(x: ImageLike, index: int) -> str:
    """A name for an image or mask in error messages: its path, or ``array #index``."""
    return str(x) if isinstance(x, (str, os.PathLike)) else f"array #{index}"


def load_image(x: ImageLike, index: int = 0) -> np.ndarray:
    """Path or array -> ``(H, W, 3) uint8`` RGB (gray ``(H, W)`` arrays are expanded). A
    ``WorkingImage`` (path-like) is decoded at its working size (``core.io.working``)."""
    if isinstance(x, WorkingImage):
        return read_image(x)
    if isinstance(x, (str, os.PathLike)):
        return read_image(Path(x))
    if not isinstance(x, np.ndarray):
        raise TypeError(f"image #{index} must be a path or a numpy array, got {type(x).__name__}")
    if x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3 or x.dtype != np.uint8:
        raise ValueError(f"image array #{index} must be (H, W, 3) uint8 RGB, got shape {x.shape} {x.dtype}")
    return x


def load_mask(x: ImageLike, index: int = 0) -> np.ndarray:
    """Path or array -> ``(H, W) uint8`` class indices."""
    if isinstance(x, (str, os.PathLike)):
        return read_mask(Path(x))
    if not isinstance(x, np.ndarray):
        raise TypeError(f"mask #{index} must be a path or a numpy array, got {type(x).__name__}")
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"mask array #{index} must be (H, W) integer class indices, got shape {x.shape} {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"mask array #{index} has values outside 0..255")
    return x.astype(np.uint8, copy=False)


def capped_pairs(
    pairs: Sequence[tuple[ImageLike, np.ndarray]], max_side: int | None
) -> list[tuple[ImageLike, np.ndarray]]:
    """Training pairs whose pictures are held at a longer side of at most ``max_side`` (a run's
    ``image_max_side``), so none is decoded at full size: an image path becomes a ``WorkingImage``
    and its label, at the picture's own size, is brought to the working size (nearest neighbour,
    ``core.io.working.to_size``). Pairs that already hold a ``WorkingImage`` or an array stay as
    they are; a pair repeated in the list (the same objects) stays one object, as ``preload`` expects.
    Pictures not larger than ``max_side`` are read and trained on exactly as before."""
    if max_side is None:
        return list(pairs)
    done: dict[int, tuple[ImageLike, np.ndarray]] = {}
    out = []
    for pair in pairs:
        key = id(pair)
        if key not in done:
            image, label = pair
            if isinstance(image, (str, os.PathLike)) and not isinstance(image, WorkingImage):
                label = np.asarray(label)
                pair = (WorkingImage(Path(image), max_side), to_size(label, working_hw(label.shape[:2], max_side)))
            done[key] = pair
        out.append(done[key])
    return out


def limit_side(image: np.ndarray, max_side: int | None, *, nearest: bool = False) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side`` (no-op when ``None`` or already small)."""
    if max_side is None:
        return image
    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return image
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def augment(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, crop: int, scale_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random scale, pad, crop ``crop x crop`` and horizontal flip, identical on image and mask.

    Returns the image ``(crop, crop, 3) uint8``, the mask ``(crop, crop) uint8`` (padding = 255)
    and a ``(crop, crop) bool`` map of padded pixels.
    """
    s = rng.uniform(*scale_range)
    h, w = mask.shape
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_NEAREST)
    ph, pw = max(crop - nh, 0), max(crop - nw, 0)
    valid = np.ones((nh, nw), bool)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
        valid = np.pad(valid, ((0, ph), (0, pw)))
    y = int(rng.integers(0, mask.shape[0] - crop + 1))
    x = int(rng.integers(0, mask.shape[1] - crop + 1))
    image, mask, valid = (
        image[y : y + crop, x : x + crop],
        mask[y : y + crop, x : x + crop],
        valid[y : y + crop, x : x + crop],
    )
    if rng.random() < 0.5:
        image, mask, valid = image[:, ::-1], mask[:, ::-1], valid[:, ::-1]
    return np.ascontiguousarray(image), np.ascontiguousarray(mask), np.ascontiguousarray(valid)


class PairDataset(Dataset):
    """``(image, mask)`` pairs loaded on access, augmented deterministically per ``(seed, epoch, index)``.

    Item: ``(x (3, crop, crop) float32 normalised, y (crop, crop) int64 with 255 = ignore)``.
    Padded pixels are zero after normalisation (the ImageNet mean colour) and ignored in the loss.
    After :meth:`preload` the pairs are read from memory (decoded and limited to ``max_side`` once)
    instead of being decoded again on every access; the items are the same.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        *,
        num_classes: int,
        crop_size: int,
        scale_range: tuple[float, float],
        max_side: int | None,
        seed: int,
    ) -> None:
        if len(pairs) == 0:
            raise ValueError("no training pairs given")
        for i, pr in enumerate(pairs):
            if not isinstance(pr, (tuple, list)) or len(pr) != 2:
                raise ValueError(f"pair #{i} must be (image, mask), got {type(pr).__name__}")
        self.pairs = list(pairs)
        self.num_classes = num_classes
        self.crop_size = crop_size
        self.scale_range = scale_range
        self.max_side = max_side
        self.seed = seed
        self.epoch = 0
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair ``i`` loaded, checked and limited to ``max_side``."""
        img_src, mask_src = self.pairs[i]
        image, mask = load_image(img_src, i), load_mask(mask_src, i)
        if image.shape[:2] != mask.shape:
            raise ValueError(
                f"image {describe(img_src, i)} is {image.shape[1]}x{image.shape[0]} but its mask "
                f"{describe(mask_src, i)} is {mask.shape[1]}x{mask.shape[0]}"
            )
        bad = np.unique(mask[(mask >= self.num_classes) & (mask != IGNORE_INDEX)])
        if bad.size:
            raise ValueError(
                f"mask {describe(mask_src, i)} holds class indices {bad.tolist()[:10]} but the model has "
                f"{self.num_classes} classes (0..{self.num_classes - 1}; 255 = ignore)"
            )
        return limit_side(image, self.max_side), limit_side(mask, self.max_side, nearest=True)

    def preload(self) -> int:
        """Decode, check and downscale every pair now and keep them (uint8) in memory; returns the
        bytes held. Later accesses read the memory copy; a pair repeated in the list (the same
        objects) is decoded and held once."""
        if self._cache is None:
            unique: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
            for i, (a, b) in enumerate(self.pairs):
                if (id(a), id(b)) not in unique:
                    unique[(id(a), id(b))] = self.load(i)
            self._cache = [unique[(id(a), id(b))] for a, b in self.pairs]
        held = {id(im): im.nbytes + m.nbytes for im, m in self._cache}
        return sum(held.values())

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self._cache[i] if self._cache is not None else self.load(i)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        image, mask, valid = augment(image, mask, rng, self.crop_size, self.scale_range)
        x = to_input(image)[0] * torch.from_numpy(valid)[None]
        return x, torch.from_numpy(mask).long()
