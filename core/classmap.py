"""One class map shared by every dataset format: index -> name, 0 = background; class indices in masks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

BACKGROUND = "background"
IGNORE_INDEX = 255
"""Mask value meaning "no label here": ignored by training and by the metrics."""


@dataclass(frozen=True)
class ClassMap:
    """Class names by index; ``names[0]`` is always ``"background"``.

    At most 255 classes (index 255 is reserved for "ignore").
    """

    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.names or self.names[0] != BACKGROUND:
            raise ValueError(f"class map must start with {BACKGROUND!r}, got {list(self.names)[:3]}")
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise ValueError(f"class map has duplicate class names: {dup}")
        if len(self.names) > IGNORE_INDEX:
            raise ValueError(f"at most {IGNORE_INDEX} classes are supported, got {len(self.names)}")
        for n in self.names:
            if not isinstance(n, str) or not n.strip():
                raise ValueError(f"class names must be non-empty strings, got {n!r}")

    @classmethod
    def from_names(cls, foreground: Iterable[str]) -> ClassMap:
        """Build from foreground class names (background is added as index 0; order kept, duplicates dropped)."""
        seen: list[str] = []
        for name in foreground:
            if name != BACKGROUND and name not in seen:
                seen.append(name)
        return cls((BACKGROUND, *seen))

    @classmethod
    def from_dict(cls, mapping: Mapping[int | str, str]) -> ClassMap:
        """From ``{index: name}`` with indices 0..K-1 contiguous (JSON keys may be strings)."""
        items = sorted((int(k), v) for k, v in mapping.items())
        if [k for k, _ in items] != list(range(len(items))):
            raise ValueError(f"class map indices must be 0..K-1 without gaps, got {[k for k, _ in items]}")
        return cls(tuple(v for _, v in items))

    def to_dict(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def num_classes(self) -> int:
        """Number of classes including background."""
        return len(self.names)

    @property
    def foreground(self) -> tuple[str, ...]:
        return self.names[1:]

    def index(self, name: str) -> int:
        """Index of ``name``; raises ``KeyError`` listing the known names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"unknown class {name!r}; known classes: {list(self.names)}") from None

    def save(self, path) -> None:
        from core.io.atomic import write_text_atomic

        write_text_atomic(path, json.dumps({str(k): v for k, v in self.to_dict().items()}, indent=2))

    @classmethod
    def load(cls, path) -> ClassMap:
        with open(path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not a valid class map JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object {{index: name}}, got {type(data).__name__}")
        return cls.from_dict(data)


def remap_table(src: ClassMap, dst: ClassMap) -> np.ndarray:
    """A ``(256,) uint8`` lookup table taking ``src`` indices to ``dst`` indices (255 stays 255).

    Raises ``ValueError`` listing the ``src`` classes that ``dst`` lacks.
    """
    missing = [n for n in src.foreground if n not in dst.names]
    if missing:
        raise ValueError(f"classes {missing} are not in the class map {list(dst.names)}")
    lut = np.arange(256, dtype=np.uint8)
    for i, name in enumerate(src.names):
        lut[i] = dst.index(name)
    return lut


def present_classes(mask: np.ndarray) -> list[int]:
    """Foreground class indices present in a mask (0 and 255 excluded), ascending."""
    counts = np.bincount(mask.ravel(), minlength=256)
    return [int(v) for v in np.flatnonzero(counts) if v not in (0, IGNORE_INDEX)]
