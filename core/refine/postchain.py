"""Post-processing of a round as a chain of ``core.postprocess`` methods, e.g. ``"crf+grabcut"``.

The dense CRF snaps the network's probabilities to colour edges and removes blobs; GrabCut, started
from the CRF's result, re-fits colour models per image and brings back thin parts (legs, tails)
that CRF and the network's coarse stride lose. Each step takes the previous step's probabilities.
"""

from __future__ import annotations

import numpy as np

from core.refine.config import POSTPROCESS_METHODS


def parse_chain(spec: str) -> tuple[str, ...]:
    """``"crf+grabcut"`` -> ``("crf", "grabcut")``; ``ValueError`` naming an unknown step."""
    steps = tuple(p.strip() for p in str(spec).split("+"))
    bad = [p for p in steps if p not in POSTPROCESS_METHODS]
    if bad or not steps:
        raise ValueError(f"postprocess {spec!r}: unknown step(s) {bad}; use one of {list(POSTPROCESS_METHODS)} "
                         f"or several joined by '+', e.g. 'crf+grabcut'")
    return steps


def postprocess(image: np.ndarray, probs: np.ndarray, spec: str) -> tuple[np.ndarray, np.ndarray]:
    """Run the chain on ``image (H, W, 3) uint8`` and ``probs (K, H, W) float32``;
    returns ``(mask (H, W) uint8, probs (K, H, W) float32)`` of the last step."""
    steps = parse_chain(spec)
    if steps == ("none",):
        return probs.argmax(axis=0).astype(np.uint8), probs
    from core.postprocess import refine_mask

    image = np.array(image)  # a writable copy: pydensecrf refuses read-only buffers
    mask = probs.argmax(axis=0).astype(np.uint8)
    for step in steps:
        if step != "none":
            mask, probs = refine_mask(image, probs, step)
    return np.asarray(mask, dtype=np.uint8), probs
