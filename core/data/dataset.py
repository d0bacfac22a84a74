"""The dataset model shared by every reader, the engine and the adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.classmap import ClassMap

if TYPE_CHECKING:
    from core.io.working import WorkingImage


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
    image_max_side: int | None = field(default=None, compare=False)
    """Hold the picture at a longer side of at most this many pixels (a run's ``image_max_side``,
    set by :meth:`capped`): :meth:`load_image`, :meth:`load_mask`, :attr:`image_source` and
    :attr:`image_hw` are then at that working size (``core.io.working``), and a larger picture is
    never decoded at full size. ``None``: the picture's own size."""

    @property
    def has_mask(self) -> bool:
        return self.mask_path is not None or self.mask_fn is not None

    def capped(self, image_max_side: int | None) -> Sample:
        """This sample held at a longer side of at most ``image_max_side`` (``None``: its own size)."""
        from core.io.working import check_max_side

        check_max_side("image_max_side", image_max_side)
        return replace(self, image_max_side=image_max_side)

    @property
    def image_source(self) -> Path | WorkingImage:
        """What readers take for this picture: its path, or a ``WorkingImage`` (path-like) read at the
        working size when the sample is :meth:`capped`."""
        from core.io.working import WorkingImage

        return self.image_path if self.image_max_side is None else WorkingImage(self.image_path, self.image_max_side)

    @property
    def original_hw(self) -> tuple[int, int]:
        """``(H, W)`` of the picture file (EXIF orientation applied; from the header)."""
        from core.io.images import image_size

        return image_size(self.image_path)

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(h, w)`` of :meth:`load_image`: :attr:`original_hw` held at ``image_max_side``."""
        from core.io.working import working_hw

        return working_hw(self.original_hw, self.image_max_side)

    def to_working(self, mask: np.ndarray) -> np.ndarray:
        """A ``(H, W)`` mask at the picture's own size, at the working size (nearest neighbour; the exact
        inverse of the enlargement masks get when written; ``mask`` itself when the sizes agree)."""
        from core.io.working import to_size, working_hw

        return to_size(mask, working_hw(np.shape(mask)[:2], self.image_max_side))

    def load_image(self) -> np.ndarray:
        """The picture as ``(h, w, 3) uint8`` RGB at :attr:`image_hw`."""
        from core.io.images import read_image

        return read_image(self.image_source)

    def load_mask(self) -> np.ndarray | None:
        """The ground-truth ``(H, W) uint8`` mask, or ``None`` when there is none; at the working size
        when the sample is :meth:`capped` (scores are computed on the uncapped sample's)."""
        if self.mask_fn is not None:
            mask = self.mask_fn()
        elif self.mask_path is not None:
            from core.io.images import read_mask

            mask = read_mask(self.mask_path)
        else:
            return None
        return mask if self.image_max_side is None else self.to_working(mask)

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

    def capped(self, image_max_side: int | None) -> Dataset:
        """Every sample held at a longer side of at most ``image_max_side`` (``Sample.capped``): the
        dataset as a run's engine sees it. ``None``: pictures at their own size."""
        return self.with_samples([s.capped(image_max_side) for s in self.samples])

    def with_gt(self) -> Dataset:
        """The samples that carry a ground-truth mask."""
        return self.with_samples([s for s in self.samples if s.has_mask])
