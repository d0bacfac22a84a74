"""Where a dataset's class map comes from: given, a ``classes.json`` next to the data, or the labels."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from core.classmap import ClassMap

log = logging.getLogger(__name__)

ClassesArg = ClassMap | str | os.PathLike | None
"""A class map, a path to a ``classes.json`` (``{index: name}``), or ``None`` (look for one)."""

CLASSES_FILE = "classes.json"


def load_classes(classes: ClassesArg) -> ClassMap | None:
    """The class map given as an object or a JSON path; ``None`` stays ``None``."""
    if classes is None or isinstance(classes, ClassMap):
        return classes
    path = Path(classes)
    if not path.is_file():
        raise FileNotFoundError(f"class map file {path} does not exist (expected JSON {{index: name}})")
    return ClassMap.load(path)


def find_classes(*folders: str | os.PathLike) -> ClassMap | None:
    """The first ``classes.json`` found in ``folders`` (in order), or ``None``."""
    for folder in folders:
        path = Path(folder) / CLASSES_FILE
        if path.is_file():
            log.info("class map from %s", path)
            return ClassMap.load(path)
    return None


def classmap_for(labels: Iterable[str], classes: ClassesArg, *search: str | os.PathLike) -> ClassMap:
    """The given class map, else a ``classes.json`` in ``search``, else the sorted label names."""
    cmap = load_classes(classes) or find_classes(*search)
    if cmap is not None:
        return cmap
    return ClassMap.from_names(sorted(set(labels)))
