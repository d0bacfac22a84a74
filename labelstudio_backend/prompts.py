"""Interactive prompts from a ``/predict`` request's ``context``.

Label Studio sends the regions drawn with a smart tool as ``context["result"]``: rectangles
(``rectanglelabels``) and keypoints (``keypointlabels``), in percent of the image size. A
keypoint is negative when ``is_positive`` is false (Alt-click) or its label is ``negative``;
a label that names a project class says which class to segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.classmap import ClassMap

POSITIVE_NAMES = frozenset({"positive", "pos", "foreground", "fg", "include"})
NEGATIVE_NAMES = frozenset({"negative", "neg", "background", "bg", "exclude"})


@dataclass(frozen=True)
class Prompt:
    """A prompt in pixel coordinates of the original image.

    Attributes:
        box: ``(x0, y0, x1, y1)`` or ``None``.
        points: ``(x, y, positive)`` triples.
        class_name: the class the prompt's labels name, if any.
    """

    box: tuple[int, int, int, int] | None = None
    points: tuple[tuple[int, int, bool], ...] = field(default_factory=tuple)
    class_name: str | None = None

    @property
    def empty(self) -> bool:
        return self.box is None and not self.points


def _pct(value: Any, size: int, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"interactive prompt: {what}={value!r} is not a number (percent of the image)") from None
    return min(max(v, 0.0), 100.0) / 100.0 * size


def parse_prompt(context: Mapping[str, Any] | None, classmap: ClassMap, *, width: int, height: int) -> Prompt:
    """The prompt in ``context`` (an empty :class:`Prompt` when there is none)."""
    if not context or not isinstance(context, Mapping):
        return Prompt()
    items = context.get("result") or []
    if not isinstance(items, list):
        raise ValueError(f"interactive context 'result' must be a list, got {type(items).__name__}")
    box = None
    points: list[tuple[int, int, bool]] = []
    class_name = None
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = str(item.get("type", "")).lower()
        value = item.get("value") or {}
        labels = [str(v) for v in value.get(kind, []) or []]
        for name in labels:
            if name in classmap.foreground and class_name is None:
                class_name = name
        if kind == "rectanglelabels":
            x0 = _pct(value.get("x"), width, "x")
            y0 = _pct(value.get("y"), height, "y")
            x1 = x0 + _pct(value.get("width"), width, "width")
            y1 = y0 + _pct(value.get("height"), height, "height")
            box = (round(x0), round(y0), min(round(x1), width), min(round(y1), height))
        elif kind == "keypointlabels":
            x = min(int(_pct(value.get("x"), width, "x")), width - 1)
            y = min(int(_pct(value.get("y"), height, "y")), height - 1)
            lowered = {n.lower() for n in labels}
            positive = bool(item["is_positive"]) if "is_positive" in item else not (lowered & NEGATIVE_NAMES)
            points.append((x, y, positive))
    return Prompt(box=box, points=tuple(points), class_name=class_name)
