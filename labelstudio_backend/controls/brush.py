"""``<BrushLabels>``: masks as Label Studio's brush RLE, through label-studio-sdk's codec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from labelstudio_backend.controls.base import MaskControl


def region_to_rle(region: np.ndarray) -> list[int]:
    """Brush RLE of a boolean ``(H, W)`` region (painted pixels get alpha 255)."""
    return [int(v) for v in mask2rle(np.where(region, 255, 0).astype(np.uint8))]


def rle_to_region(rle: list[int], *, width: int, height: int) -> np.ndarray:
    """Boolean ``(H, W)`` region of a brush RLE (RGBA words; a pixel is set when alpha > 127)."""
    flat = decode_rle(bytes(bytearray(int(v) for v in rle)))
    if flat.size != width * height * 4:
        raise ValueError(
            f"brush RLE holds {flat.size} values but original_width x original_height x 4 = {width * height * 4}"
        )
    return flat.reshape(height, width, 4)[:, :, 3] > 127


class BrushControl(MaskControl):
    """One result per class, ``value = {"format": "rle", "rle": [...], "brushlabels": [name]}``."""

    tag: ClassVar[str] = "brushlabels"

    def encode(self, region: np.ndarray, *, width: int, height: int) -> list[dict[str, Any]]:
        return [{"format": "rle", "rle": region_to_rle(region)}]

    def decode(self, value: Mapping[str, Any], *, width: int, height: int) -> np.ndarray:
        fmt = value.get("format", "rle")
        if fmt != "rle" or "rle" not in value:
            raise ValueError(f"brush result of {self.from_name!r} has format {fmt!r}; expected an 'rle' value")
        return rle_to_region(value["rle"], width=width, height=height)
