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
        from_name: the control's ``name`` (for ``<Labels>`` + ``<Brush>``: the ``<Labels>``' name).
        to_name: the ``name`` of the ``<Image>`` it labels.
        labels: its ``<Label value=...>`` names, in config order.
        tool_name: for a ``<Labels>`` control used with a separate drawing tool (``<Brush>``,
            ``<Polygon>``) on the same image, the tool's ``name``; ``None`` for ``<BrushLabels>``
            and ``<PolygonLabels>``. Predictions are written in Label Studio's merged form
            (``from_name`` = the labels control, ``type`` = ``brushlabels``); annotations are read
            in the merged form and in the split form (a ``brush`` result and a ``labels`` result
            sharing one ``id``).
    """

    tag: ClassVar[str] = ""
    """Lower-case tag name, e.g. ``"brushlabels"``; also the result ``type``."""

    from_name: str
    to_name: str
    labels: tuple[str, ...]
    tool_name: str | None = None

    @property
    def geometry(self) -> str:
        """The result type of the bare drawing tool (``brush``, ``polygon``)."""
        return self.tag.removesuffix("labels")

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
        mine = self._own_results(results)
        if not mine:
            return None
        if height is None or width is None:
            first = mine[0][0]
            try:
                height, width = int(first["original_height"]), int(first["original_width"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(
                    f"{self.tag} result of {self.from_name!r} has no original_width/original_height"
                ) from None
        out = np.zeros((height, width), np.uint8)
        for r, names in mine:
            value = r.get("value") or {}
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

    def _own_results(self, results: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], list[str]]]:
        """``(result, label names)`` of the results drawn with this control, in order."""
        names_by_id: dict[Any, list[str]] = {}
        if self.tool_name is not None:  # split form: the labels travel in a "labels" result with the same id
            for r in results:
                if (
                    isinstance(r, Mapping)
                    and str(r.get("type", "")).lower() == "labels"
                    and r.get("from_name") == self.from_name
                ):
                    names_by_id[r.get("id")] = list((r.get("value") or {}).get("labels") or [])
        sources = {self.from_name} | ({self.tool_name} if self.tool_name else set())
        out: list[tuple[Mapping[str, Any], list[str]]] = []
        for r in results:
            if not isinstance(r, Mapping) or r.get("from_name") not in sources:
                continue
            kind = str(r.get("type", "")).lower()
            value = r.get("value") or {}
            if kind == self.tag:
                out.append((r, list(value.get(self.tag) or value.get("labels") or [])))
            elif self.tool_name is not None and kind == self.geometry:
                out.append((r, list(value.get(self.tag) or value.get("labels") or names_by_id.get(r.get("id")) or [])))
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
