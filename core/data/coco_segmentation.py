"""COCO ``segmentation`` values: checked before ``pycocotools`` sees them, then decoded.

``pycocotools`` trusts its input: huge or non-finite polygon coordinates overflow its integer
arithmetic (a segmentation fault or an endless allocation), and RLE counts that do not add up to
``height x width`` are read past the mask or silently leave it short. ``segmentation_problem``
finds all of these in Python first, so a bad file gives one named error instead.
"""

from __future__ import annotations

import warnings

import numpy as np

from core.data.polygons import polygon_problem, polygons_to_mask

MAX_RLE_DIGITS = 7
"""Characters one compressed-RLE number may take (7 x 5 bits covers any count we accept)."""


def rle_string_counts(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (``pycocotools``' ``rleFrString``, checked).

    Raises ``ValueError`` for a character outside the RLE alphabet (``'0'``..``'o'``), a number
    cut short at the end of the string, or a number longer than ``MAX_RLE_DIGITS`` characters.
    """
    out: list[int] = []
    p = 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                raise ValueError("compressed RLE string ends inside a number")
            c = ord(counts[p]) - 48
            if not 0 <= c <= 63:
                raise ValueError(f"character {counts[p]!r} at {p} is not compressed RLE (expected '0'..'o')")
            if k >= MAX_RLE_DIGITS:
                raise ValueError(f"compressed RLE number at {p} is longer than {MAX_RLE_DIGITS} characters")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _rle_problem(seg: dict, height: int, width: int) -> str | None:
    size = seg.get("size")
    if not isinstance(size, list) or [type(v) for v in size] != [int, int]:
        return f"RLE 'size' must be [height, width], got {size!r}"
    if size != [height, width]:
        return f"RLE size {size} does not match the image's height x width {height}x{width}"
    counts = seg.get("counts")
    if isinstance(counts, str):
        try:
            runs = rle_string_counts(counts)
        except ValueError as exc:
            return str(exc)
    elif isinstance(counts, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in counts):
        runs = counts
    else:
        return "RLE 'counts' must be a compressed string or a list of integers"
    if any(v < 0 for v in runs):
        return f"RLE counts must not be negative, got {min(runs)}"
    if sum(runs) != height * width:
        return f"RLE counts add up to {sum(runs)} pixels, but the image has {height}x{width} = {height * width}"
    return None


def segmentation_problem(seg: object, height: int, width: int) -> str | None:
    """Why ``seg`` cannot be decoded for a ``height x width`` image, or ``None`` when it can.

    ``seg``: a list of polygons (see ``core.data.polygons.polygon_problem``), or an RLE dict
    with ``size == [height, width]`` and ``counts`` (a compressed string or a list of
    non-negative run lengths) adding up to ``height * width``. An empty value is no segmentation.
    """
    if not seg:
        return None
    if isinstance(seg, list):
        for poly in seg:
            problem = polygon_problem(poly, height, width)
            if problem:
                return problem
        return None
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        return "segmentation must be a list of polygons or an RLE dict with 'size' and 'counts'"
    return _rle_problem(seg, height, width)


def decode_segmentation(seg, height: int, width: int, *, where: str = "") -> np.ndarray:
    """A COCO segmentation (polygons, RLE or uncompressed RLE) as an ``(H, W) bool`` mask.

    Raises ``ValueError`` starting with ``where`` when ``segmentation_problem`` refuses it.
    """
    from pycocotools import mask as mask_utils

    problem = segmentation_problem(seg, height, width)
    if problem:
        raise ValueError(f"{where}: {problem}")
    if isinstance(seg, list):
        return polygons_to_mask(seg, height, width)
    rle = seg
    if isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)
