"""Post-processing of a round as a chain of ``core.postprocess`` methods, e.g. ``"crf+grabcut"``.

The dense CRF snaps the network's probabilities to colour edges and removes blobs; GrabCut, started
from the CRF's result, re-fits colour models per image and brings back thin parts (legs, tails)
that CRF and the network's coarse stride lose. Each step takes the previous step's probabilities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.refine.sections import parse_chain

if TYPE_CHECKING:
    from core.postprocess.refine import PostprocessConfig

__all__ = ["MIN_KEEP", "parse_chain", "postprocess"]


MIN_KEEP = 0.25
"""A step's mask must keep at least this fraction of the network's foreground area to be trusted."""


def postprocess(
    image: np.ndarray,
    probs: np.ndarray,
    spec: str,
    *,
    params: PostprocessConfig | None = None,
    min_keep: float = MIN_KEEP,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the chain on ``image (H, W, 3) uint8`` and ``probs (K, H, W) float32`` with the steps'
    ``params`` (a run's ``post.params``; ``PostprocessConfig()`` when omitted);
    returns ``(mask (H, W) uint8, probs (K, H, W) float32)``.

    The image-level label says the object is there, so a post-processor that wipes it out is
    wrong: the result is the last step whose mask keeps at least ``min_keep`` of the network's
    foreground area (``argmax(probs)``), else the network's own argmax.
    """
    steps = parse_chain(spec)
    net_mask = probs.argmax(axis=0).astype(np.uint8)
    if steps == ("none",):
        return net_mask, probs
    from core.postprocess import refine_mask

    image = np.array(image)  # a writable copy: pydensecrf refuses read-only buffers
    results = [(net_mask, probs)]
    for step in steps:
        if step != "none":
            mask, probs = refine_mask(image, probs, step, config=params)
            results.append((np.asarray(mask, dtype=np.uint8), probs))
    need = min_keep * float((net_mask > 0).sum())
    for mask, p in reversed(results):
        if float((mask > 0).sum()) >= need:
            return mask, p
    return results[0]
