"""Re-indexing masks from one class map to another by class name."""

from __future__ import annotations

from typing import Mapping

from core.classmap import ClassMap, remap_table
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike, as_mask


def remap_masks(masks: Mapping[str, MaskLike], src: ClassMap, dst: ClassMap) -> LazyMasks:
    """``masks`` (indices of ``src``) re-indexed to ``dst`` by class name; each on access."""
    lut = remap_table(src, dst)
    sources = getattr(masks, "sources", {})
    return LazyMasks({s: (lambda s=s: lut[as_mask(masks[s], s, src)]) for s in masks}, sources)
