"""Re-indexing masks from one class map to another by class name."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from core.classmap import ClassMap
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike, as_mask


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


def remap_masks(masks: Mapping[str, MaskLike], src: ClassMap, dst: ClassMap) -> LazyMasks:
    """``masks`` (indices of ``src``) re-indexed to ``dst`` by class name; each on access."""
    lut = remap_table(src, dst)
    sources = getattr(masks, "sources", {})
    return LazyMasks({s: (lambda s=s: lut[as_mask(masks[s], s, src)]) for s in masks}, sources)
