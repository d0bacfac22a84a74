"""The dataset model shared by every reader, the engine and the adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.classmap import ClassMap


@dataclass(frozen=True)
class Sample:
    """One image with its image-level labels and, optionally, a ground-truth mask.

    ``labels`` are class names from the dataset's class map (empty = not known).
    The ground truth is either ``mask_path`` (a class-index PNG whose indices follow the
    dataset's class map; 255 = ignore) or ``mask_fn`` (a callable returning the ``(H, W) uint8``
    mask, used by formats that store masks inside a file, e.g. COCO).
    """

    stem: str
    image_path: Path
    labels: tuple[str, ...] = ()
    mask_path: Path | None = None
    mask_fn: Callable[[], np.ndarray] | None = field(default=None, compare=False, repr=False)

    @property
    def has_mask(self) -> bool:
        return self.mask_path is not None or self.mask_fn is not None

    def load_image(self) -> np.ndarray:
        from core.io.images import read_image

        return read_image(self.image_path)

    def load_mask(self) -> np.ndarray | None:
        """The ground-truth ``(H, W) uint8`` mask, or ``None`` when there is none."""
        if self.mask_fn is not None:
            return self.mask_fn()
        if self.mask_path is not None:
            from core.io.images import read_mask

            return read_mask(self.mask_path)
        return None

    def require_mask(self) -> np.ndarray:
        """:meth:`load_mask` for a sample known to have ground truth; ``ValueError`` naming it if not."""
        mask = self.load_mask()
        if mask is None:
            raise ValueError(f"sample {self.stem!r} has no ground-truth mask (mask_path / mask_fn)")
        return mask


@dataclass(frozen=True)
class Dataset:
    """An ordered set of samples with unique stems over one class map."""

    samples: tuple[Sample, ...]
    classmap: ClassMap

    def __post_init__(self) -> None:
        stems = [s.stem for s in self.samples]
        if len(set(stems)) != len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})[:10]
            raise ValueError(f"image stems must be unique within a dataset; repeated: {dup}")
        for s in self.samples:
            for lab in s.labels:
                if lab not in self.classmap.names[1:]:
                    raise ValueError(
                        f"image {s.image_path} has label {lab!r}, which is not a class of the class map "
                        f"{list(self.classmap.foreground)}"
                    )

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def stems(self) -> list[str]:
        return [s.stem for s in self.samples]

    def by_stem(self) -> dict[str, Sample]:
        return {s.stem: s for s in self.samples}

    def with_samples(self, samples: Sequence[Sample]) -> Dataset:
        return replace(self, samples=tuple(samples))

    def with_gt(self) -> Dataset:
        """The samples that carry a ground-truth mask."""
        return self.with_samples([s for s in self.samples if s.has_mask])
