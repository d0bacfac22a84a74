"""What the configs share: refusing unknown keys with the known ones, and ``KEY=VALUE`` overrides."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any


def check_known_fields(cls: type, data: Mapping[str, Any], noun: str = "field") -> None:
    """Raise ``ValueError`` naming the keys of ``data`` that are not fields of dataclass ``cls``."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} {noun}(s) {unknown}; known {noun}s: {known}")


def parse_key_values(items: list[str], option: str = "--set") -> dict[str, Any]:
    """``["epochs=3", "init=grabcut"]`` -> ``{"epochs": 3, "init": "grabcut"}``: each VALUE is read as
    JSON when it parses, else kept as text; ``ValueError`` naming ``option`` on an item without ``=``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out
