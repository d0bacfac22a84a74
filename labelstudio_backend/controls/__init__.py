"""One small class per Label Studio control tag that carries masks."""

from __future__ import annotations

from labelstudio_backend.controls.base import MaskControl
from labelstudio_backend.controls.brush import BrushControl
from labelstudio_backend.controls.polygon import PolygonControl

CONTROLS: dict[str, type[MaskControl]] = {
    BrushControl.tag: BrushControl,
    PolygonControl.tag: PolygonControl,
}
"""Lower-case tag name -> control class."""

__all__ = ["CONTROLS", "BrushControl", "MaskControl", "PolygonControl"]
