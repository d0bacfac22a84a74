"""Robust image and mask reading.

Every image comes back as ``(H, W, 3) uint8`` RGB: EXIF orientation applied, grayscale, RGBA,
palette, CMYK and 16-bit images converted (16-bit data by its real range, so 12-bit pictures are
not darkened). Masks come back as ``(H, W) uint8`` class indices. A picture whose header claims
more than ``MAX_IMAGE_PIXELS`` is refused before it is decoded; ``check_images`` decodes enough of
each file to find truncation (see ``core.io.decode``). A ``core.io.working.WorkingImage`` is read at
its working size, never decoded at full size when it is larger.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from core.io.atomic import atomic_path
from core.io.decode import MAX_IMAGE_PIXELS, ImageReadError, draft, opened, orientation, to_rgb
from core.io.working import WorkingImage, working_hw

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "ImageReadError",
    "WorkingImage",
    "check_images",
    "encode_png",
    "image_size",
    "list_images",
    "read_image",
    "read_mask",
    "verify_image",
    "write_image",
    "write_mask",
]


def read_image(path: str | os.PathLike | WorkingImage, *, max_side: int | None = None) -> np.ndarray:
    """Read one image as ``(H, W, 3) uint8`` RGB; raises ``ImageReadError`` naming the file.

    ``max_side``: a JPEG larger than twice this is decoded at a reduced DCT scale (1/2, 1/4 or
    1/8) whose longer side is still at least ``max_side``, so a huge photo never sits in memory
    at full size; the result is then smaller than the file's own size (callers resize further).
    Other formats always decode at full size.

    A ``WorkingImage`` comes back at exactly its working size (``core.io.working.working_hw``): as
    above, then resized (area interpolation) to that size; a picture not larger than its
    ``max_side`` is read exactly as its path would be (``max_side`` must then be ``None``).
    """
    if isinstance(path, WorkingImage):
        if max_side is not None:
            raise ValueError(f"{path}: give max_side either in the WorkingImage or to read_image, not both")
        return _read_working(path)
    path = Path(path)
    with opened(path) as img:
        if max_side is not None:
            draft(img, max_side)
        return to_rgb(path, img)


def _read_working(picture: WorkingImage) -> np.ndarray:
    """``picture`` as ``(h, w, 3) uint8`` at ``working_hw`` of its oriented size, decoded at reduced size."""
    path = picture.path
    with opened(path) as img:
        w, h = img.size
        if orientation(img) in (5, 6, 7, 8):
            h, w = w, h
        target = working_hw((h, w), picture.max_side)
        if target == (h, w):
            return to_rgb(path, img)
        draft(img, max(target))
        rgb = to_rgb(path, img)
    if rgb.shape[:2] == target:
        return rgb
    return cv2.resize(rgb, (target[1], target[0]), interpolation=cv2.INTER_AREA)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` after EXIF orientation, reading only the header where possible (of a
    ``WorkingImage``: the file's own size, not its working size)."""
    with opened(path) as img:
        w, h = img.size
        turned = orientation(img) in (5, 6, 7, 8)
    return (w, h) if turned else (h, w)


def verify_image(path: str | os.PathLike) -> None:
    """Decode enough of ``path`` to find a truncated or corrupt file; raises ``ImageReadError``.

    PNGs are checked chunk by chunk (CRCs, up to the end marker), JPEGs fully decoded at 1/8
    scale (every byte is read, little memory), other formats fully decoded.
    """
    with opened(path) as img:
        if img.format == "PNG":
            img.verify()
            return
        draft(img, 1)
        img.load()


def check_images(paths: Iterable[str | os.PathLike], *, skip_bad: bool = False) -> list[Path]:
    """Verify every image decodes (``verify_image``); return the good ones.

    With ``skip_bad=False`` one ``ImageReadError`` lists every bad file; with ``skip_bad=True``
    bad files are dropped with a warning each.
    """
    good: list[Path] = []
    failures: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        try:
            verify_image(p)
            good.append(p)
        except ImageReadError as exc:
            failures.update(exc.failures)
        except Exception as exc:  # PIL's decoders raise many other types for corrupt files
            failures[str(p)] = f"not a readable image ({exc.__class__.__name__}: {exc})"
    if failures:
        if not skip_bad:
            raise ImageReadError(failures)
        for p, why in failures.items():
            log.warning("skipping %s: %s", p, why)
    return good


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; raises if the folder is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"image folder {folder} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)})")
    return files


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a class-index mask PNG as ``(H, W) uint8``. Palette PNGs give their indices."""
    with opened(path, "mask") as img:
        img.load()
        if img.mode in ("P", "L", "1"):
            arr = np.asarray(img, dtype=np.uint8)
        elif img.mode in ("I", "I;16", "I;16B", "I;16L"):
            raw = np.asarray(img)
            if raw.size and (raw.max() > 255 or raw.min() < 0):
                raise ValueError(f"mask values {raw.min()}..{raw.max()} do not fit class indices 0..255")
            arr = raw.astype(np.uint8)
        else:
            raise ValueError(f"mode {img.mode} is not a single-channel class-index mask")
    return np.array(arr, dtype=np.uint8)  # a writable, contiguous copy


def encode_png(array: np.ndarray, palette: Sequence[int] | None = None) -> bytes:
    """PNG bytes for a ``(H, W)`` uint8 mask (optionally as a palette PNG) or an ``(H, W, 3)`` image."""
    if array.dtype != np.uint8:
        raise TypeError(f"expected uint8 array, got {array.dtype}")
    img = Image.fromarray(array)
    if palette is not None:
        img = img.convert("P") if img.mode != "P" else img
        img.putpalette(list(palette))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_mask(
    path: str | os.PathLike, mask: np.ndarray, *, overwrite: bool = True, palette: Sequence[int] | None = None
) -> Path:
    """Write a ``(H, W) uint8`` class-index mask as PNG, atomically."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    data = encode_png(np.ascontiguousarray(mask), palette)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_image(path: str | os.PathLike, image: np.ndarray, *, overwrite: bool = True, quality: int = 95) -> Path:
    """Write an ``(H, W, 3) uint8`` RGB image (format from the suffix), atomically."""
    path = Path(path)
    img = Image.fromarray(image)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), "PNG")
        img.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return path
