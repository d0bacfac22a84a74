"""``<PolygonLabels>``: masks as polygons in percent coordinates (outer contours only).

Label Studio polygons are single rings, so holes (e.g. of a ring-shaped object) are lost; use
``<BrushLabels>`` when holes matter. Pixel ``i`` maps to ``(i + 0.5) / size * 100`` percent and
back, so a mask survives encode -> decode up to the polygon simplification.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image, ImageDraw

from labelstudio_backend.controls.base import MaskControl

MIN_AREA_PX = 4.0
"""Contours smaller than this (in pixels) are dropped."""
SIMPLIFY_PX = 0.75
"""Douglas-Peucker tolerance in pixels."""


class PolygonControl(MaskControl):
    """One result per outer contour.

    ``value = {"points": [[x%, y%], ...], "closed": true, "polygonlabels": [name]}``.
    """

    tag: ClassVar[str] = "polygonlabels"

    def encode(self, region: np.ndarray, *, width: int, height: int) -> list[dict[str, Any]]:
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        values = []
        for c in contours:
            if cv2.contourArea(c) < MIN_AREA_PX:
                continue
            corners: np.ndarray = cv2.approxPolyDP(c, SIMPLIFY_PX, True).reshape(-1, 2)
            if len(corners) < 3:
                continue
            points = [
                [round((float(x) + 0.5) / width * 100.0, 4), round((float(y) + 0.5) / height * 100.0, 4)]
                for x, y in corners
            ]
            values.append({"points": points, "closed": True})
        return values

    def decode(self, value: Mapping[str, Any], *, width: int, height: int) -> np.ndarray:
        points = value.get("points")
        if not isinstance(points, list) or len(points) < 3:
            raise ValueError(f"polygon result of {self.from_name!r} needs at least 3 points, got {points!r}")
        xy = [(float(x) / 100.0 * width - 0.5, float(y) / 100.0 * height - 0.5) for x, y in points]
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon(xy, fill=1, outline=1)
        return np.asarray(canvas, dtype=bool)
