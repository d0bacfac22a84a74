"""What every frozen config's ``from_dict`` shares: refusing unknown keys with the known ones."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping


def check_known_fields(cls: type, data: Mapping[str, Any], noun: str = "field") -> None:
    """Raise ``ValueError`` naming the keys of ``data`` that are not fields of dataclass ``cls``."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} {noun}(s) {unknown}; known {noun}s: {known}")
