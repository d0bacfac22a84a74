"""Opening and decoding pictures safely: a pixel limit checked from the header, reduced-scale JPEG
decoding, 16-bit data read by its real range, EXIF orientation.

Used by ``core.io.images``; every failure is an ``ImageReadError`` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 178_956_970
"""Largest picture (width x height) opened: PIL's own decompression-bomb threshold (2 x its
``Image.MAX_IMAGE_PIXELS``). Larger headers are refused before anything is decoded."""

_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transpose that shows the picture upright (as ``ImageOps.exif_transpose``)."""

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
_PIL_LIMIT_LOCK = threading.Lock()


class ImageReadError(ValueError):
    """One or more images could not be read; ``failures`` maps each path to its reason."""

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        if len(self.failures) == 1:
            ((path, why),) = self.failures.items()
            super().__init__(f"{path}: {why}")
            return
        lines = "\n".join(f"  {p}: {why}" for p, why in self.failures.items())
        super().__init__(f"{len(self.failures)} image(s) could not be read:\n{lines}")


def _header_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the header of a file PIL refused as a decompression bomb."""
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit is checked by the caller
        try:
            with Image.open(path) as img:
                return img.size
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def too_large(width: int, height: int) -> str:
    return f"image is too large: {width} x {height} pixels, limit {MAX_IMAGE_PIXELS}"


@contextlib.contextmanager
def opened(path: str | os.PathLike, what: str = "image") -> Iterator[Image.Image]:
    """``Image.open(path)`` with the size checked against ``MAX_IMAGE_PIXELS`` (header only).

    Errors raised while the block runs (decoding included) become an ``ImageReadError`` naming
    ``path``; ``what`` ("image" or "mask") words the reason.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageReadError({str(path): too_large(width, height)})
            yield img
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError({str(path): f"{'mask ' if what == 'mask' else ''}file not found"}) from None
    except Image.DecompressionBombError:
        raise ImageReadError({str(path): too_large(*_header_size(path))}) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise ImageReadError({str(path): f"not a readable {what} ({exc.__class__.__name__}: {exc})"}) from None


def orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright, 5..8 swap width and height)."""
    try:
        return int(img.getexif().get(0x0112, 1))
    except (TypeError, ValueError):
        return 1


def draft(img: Image.Image, max_side: int) -> None:
    """Let a JPEG decode at the smallest DCT scale (1/2, 1/4, 1/8) whose longer side is still >= ``max_side``."""
    width, height = img.size
    scale = max_side / max(width, height)
    if img.format == "JPEG" and scale < 1:
        img.draft(img.mode, (max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale)))))


def bits_needed(values: np.ndarray) -> int:
    """Bit depth of integer data judged from its largest value (at least 8): 4095 -> 12, 65535 -> 16."""
    top = int(values.max()) if values.size else 0
    return max(8, top.bit_length())


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Integer data scaled from its inferred bit depth (``bits_needed``) to ``0..255``."""
    values = np.clip(values, 0, None)
    scale = 255.0 / float(2 ** bits_needed(values) - 1)
    return np.clip(np.rint(values.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def _png_depth_and_colour(path: Path) -> tuple[int, int]:
    """``(bit depth, colour type)`` from a PNG's IHDR chunk (bytes 24 and 25 of the file)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    return (head[24], head[25]) if len(head) == 26 else (8, 0)


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``rgb`` (uint8) over white with ``alpha`` in ``[0, 1]``."""
    out = rgb.astype(np.float64) * alpha[..., None] + 255.0 * (1.0 - alpha[..., None])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _sixteen_bit_colour(path: Path) -> np.ndarray:
    """A 16-bit RGB(A) PNG (which PIL cuts to its high bytes) as uint8 RGB, by its real range."""
    raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.shape[2] not in (3, 4):
        raise ValueError("a 16-bit colour PNG that OpenCV cannot decode")
    rgb = to_uint8(raw[..., 2::-1])
    if raw.shape[2] == 3:
        return rgb
    alpha = raw[..., 3].astype(np.float64) / float(2 ** bits_needed(raw[..., 3]) - 1)
    return _composite(rgb, alpha)


def to_rgb(path: Path, img: Image.Image) -> np.ndarray:
    """Decode an opened picture as ``(H, W, 3) uint8`` RGB, upright, transparency over white."""
    img.load()
    if img.format == "PNG" and img.mode in ("RGB", "RGBA") and _png_depth_and_colour(path) in ((16, 2), (16, 6)):
        rgb = _sixteen_bit_colour(path)
    elif img.mode in _SIXTEEN_BIT_MODES:
        rgb = np.repeat(to_uint8(np.asarray(img))[..., None], 3, axis=2)
    elif img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        rgb = np.asarray(Image.alpha_composite(background, img.convert("RGBA")).convert("RGB"))
    else:
        rgb = np.asarray(img.convert("RGB"))
    method = _ORIENT.get(orientation(img))
    if method is not None:
        rgb = np.asarray(Image.fromarray(rgb).transpose(method))
    return np.array(rgb, dtype=np.uint8)  # a writable, contiguous copy
