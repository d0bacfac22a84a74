"""A read-only ``{stem: mask}`` mapping that loads each mask only when it is asked for.

Formats return masks this way so that evaluating or converting a large dataset never holds every
mask in memory; ``dict(store)`` loads them all when that is wanted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np


class LazyMasks(Mapping[str, np.ndarray]):
    """``{stem: (H, W) uint8 mask}`` whose values are produced by loader callables on each access.

    ``sources`` maps each stem to where it comes from (a path or a description), for messages;
    ``inputs`` lists the files the masks are read from (writers refuse to overwrite them).
    """

    def __init__(
        self,
        loaders: Mapping[str, Callable[[], np.ndarray]],
        sources: Mapping[str, str] | None = None,
        inputs: Sequence[Path] = (),
    ):
        self._loaders = dict(loaders)
        self.sources = dict(sources or {})
        self.inputs = tuple(Path(p) for p in inputs)

    def __getitem__(self, stem: str) -> np.ndarray:
        return self._loaders[stem]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __repr__(self) -> str:
        return f"LazyMasks({len(self)} masks)"
