"""Image-level labels as class indices: what every route starts from."""

from __future__ import annotations

from collections.abc import Sequence

from core.classmap import ClassMap
from core.data.dataset import Sample


def image_classes(sample: Sample, classmap: ClassMap) -> list[int]:
    """Class indices of the sample's image-level labels; raises naming the image if it has none."""
    if not sample.labels:
        raise ValueError(
            f"image {sample.image_path} (stem {sample.stem!r}) has no image-level label; every image needs "
            f"one of {list(classmap.foreground)} to get an initial mask"
        )
    return [classmap.index(name) for name in sample.labels]


def check_labels(samples: Sequence[Sample], classmap: ClassMap) -> None:
    """Fail early, before any heavy work, when an image has no label."""
    for s in samples:
        image_classes(s, classmap)
