"""Re-indexing masks from one class map to another by class name."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from core.classmap import ClassMap, remap_table
from core.formats.store import LazyMasks
from core.formats.validate import MaskLike, as_mask


def remap_masks(masks: Mapping[str, MaskLike], src: ClassMap, dst: ClassMap) -> LazyMasks:
    """``masks`` (indices of ``src``) re-indexed to ``dst`` by class name; each on access."""
    lut = remap_table(src, dst)
    sources = getattr(masks, "sources", {})

    def remapped(stem: str) -> np.ndarray:
        return lut[as_mask(masks[stem], stem, src)]

    return LazyMasks({s: partial(remapped, s) for s in masks}, sources, getattr(masks, "inputs", ()))
