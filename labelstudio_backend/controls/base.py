"""``MaskControl``: what every mask-producing control tag (brush, polygon) shares.

A control turns a class-index mask into Label Studio results (one or more per class present)
and turns submitted results back into a class-index mask. Label names are matched by name
against a :class:`core.classmap.ClassMap`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from core.classmap import IGNORE_INDEX, ClassMap


@dataclass(frozen=True, kw_only=True)
class MaskControl:
    """One control tag of a labelling config, e.g. ``<BrushLabels name="tag" toName="image">``.

    Attributes:
        from_name: the control's ``name``.
        to_name: the ``name`` of the ``<Image>`` it labels.
        labels: its ``<Label value=...>`` names, in config order.
    """

    tag: ClassVar[str] = ""
    """Lower-case tag name, e.g. ``"brushlabels"``; also the result ``type``."""

    from_name: str
    to_name: str
    labels: tuple[str, ...]

    def to_results(self, mask: np.ndarray, class_names: Sequence[str], score: float) -> list[dict[str, Any]]:
        """Results for every foreground class present in ``mask`` ((H, W) uint8 class indices).

        ``class_names[i]`` is the label name of class index ``i`` (index 0 = background and
        255 = ignore are never emitted).
        """
        mask = _check_mask(mask)
        height, width = mask.shape
        out: list[dict[str, Any]] = []
        for idx in np.unique(mask):
            idx = int(idx)
            if idx in (0, IGNORE_INDEX):
                continue
            if idx >= len(class_names):
                raise ValueError(f"mask holds class index {idx} but only {len(class_names)} class names were given")
            name = class_names[idx]
            for value in self.encode(mask == idx, width=width, height=height):
                value[self.tag] = [name]
                out.append(self.result(value, width=width, height=height, score=score))
        return out

    def result(self, value: dict[str, Any], *, width: int, height: int, score: float) -> dict[str, Any]:
        return {
            "id": uuid.uuid4().hex[:10],
            "from_name": self.from_name,
            "to_name": self.to_name,
            "type": self.tag,
            "original_width": int(width),
            "original_height": int(height),
            "image_rotation": 0,
            "value": value,
            "score": float(score),
        }

    def to_mask(
        self,
        results: Sequence[Mapping[str, Any]],
        classmap: ClassMap,
        *,
        height: int | None = None,
        width: int | None = None,
    ) -> np.ndarray | None:
        """A class-index mask from this control's results (later results paint over earlier ones).

        Returns ``None`` when no result belongs to this control. The size comes from the
        results' ``original_height``/``original_width`` unless given. A label that is not a
        class raises ``ValueError`` naming it and the known classes.
        """
        mine = [
            r for r in results if r.get("from_name") == self.from_name and str(r.get("type", "")).lower() == self.tag
        ]
        if not mine:
            return None
        if height is None or width is None:
            first = mine[0]
            try:
                height, width = int(first["original_height"]), int(first["original_width"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"{self.tag} result of {self.from_name!r} has no original_width/original_height"
                ) from None
        out = np.zeros((height, width), np.uint8)
        for r in mine:
            value = r.get("value") or {}
            names = value.get(self.tag) or []
            if not names:
                continue
            name = names[0]
            if name not in classmap.names:
                raise ValueError(
                    f"annotation label {name!r} of {self.from_name!r} is not a class of the project "
                    f"(classes: {list(classmap.foreground)}); add <Label value={name!r}/> to the config"
                )
            region = self.decode(value, width=width, height=height)
            out[region] = classmap.index(name)
        return out

    # -- per-tag encoding -------------------------------------------------------------------------
    def encode(self, region: np.ndarray, *, width: int, height: int) -> list[dict[str, Any]]:
        """``value`` dicts (without the label list) for one class's boolean region."""
        raise NotImplementedError

    def decode(self, value: Mapping[str, Any], *, width: int, height: int) -> np.ndarray:
        """The boolean ``(height, width)`` region of one result's ``value``."""
        raise NotImplementedError


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"expected a (H, W) uint8 class-index mask, got shape {mask.shape} dtype {mask.dtype}")
    return mask
