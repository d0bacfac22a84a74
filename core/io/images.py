"""Robust image and mask reading.

Every image comes back as ``(H, W, 3) uint8`` RGB: EXIF orientation applied, grayscale, RGBA,
palette, CMYK and 16-bit images converted. Masks come back as ``(H, W) uint8`` class indices.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.io.atomic import atomic_path

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class ImageReadError(ValueError):
    """One or more images could not be read; ``failures`` maps each path to its reason."""

    def __init__(self, failures: dict[str, str]):
        self.failures = dict(failures)
        lines = "\n".join(f"  {p}: {why}" for p, why in self.failures.items())
        super().__init__(f"{len(self.failures)} image(s) could not be read:\n{lines}")


def _to_rgb(img: Image.Image) -> np.ndarray:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 0.0
        scale = 255.0 / (65535.0 if hi > 255 else max(hi, 1.0) if img.mode == "I" else 65535.0)
        arr = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy (np.asarray of PIL is read-only)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image as ``(H, W, 3) uint8`` RGB; raises ``ImageReadError`` naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return _to_rgb(img)
    except FileNotFoundError:
        raise ImageReadError({str(path): "file not found"}) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError({str(path): f"not a readable image ({exc.__class__.__name__}: {exc})"}) from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` after EXIF orientation, reading only the header where possible."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise ImageReadError({str(path): "file not found"}) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError({str(path): f"not a readable image ({exc})"}) from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def check_images(paths: Iterable[str | os.PathLike], *, skip_bad: bool = False) -> list[Path]:
    """Verify every image opens; return the good ones.

    With ``skip_bad=False`` one ``ImageReadError`` lists every bad file; with ``skip_bad=True``
    bad files are dropped with a warning each.
    """
    good: list[Path] = []
    failures: dict[str, str] = {}
    for p in paths:
        p = Path(p)
        try:
            with Image.open(p) as img:
                img.verify()
            good.append(p)
        except FileNotFoundError:
            failures[str(p)] = "file not found"
        except Exception as exc:  # PIL raises many types for corrupt files
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
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "L"):
                arr = np.asarray(img, dtype=np.uint8)
            elif img.mode in ("I", "I;16", "I;16B", "I;16L"):
                raw = np.asarray(img)
                if raw.max(initial=0) > 255:
                    raise ValueError(f"mask values up to {raw.max()} do not fit class indices 0..255")
                arr = raw.astype(np.uint8)
            elif img.mode == "1":
                arr = np.asarray(img, dtype=np.uint8)
            else:
                raise ValueError(f"mode {img.mode} is not a single-channel class-index mask")
    except FileNotFoundError:
        raise ImageReadError({str(path): "mask file not found"}) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError({str(path): f"not a readable mask ({exc})"}) from None
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


def write_mask(path: str | os.PathLike, mask: np.ndarray, *, overwrite: bool = True,
               palette: Sequence[int] | None = None) -> Path:
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
