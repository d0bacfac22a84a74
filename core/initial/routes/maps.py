"""The dataset loop of the map-based routes (``cam``, ``grabcut``, ``auto`` without a source):
coarse maps per image, then a per-image recipe of ``core.initial.pipeline``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.labels import image_classes
from core.initial.resize import resize_longest
from core.initial.result import Collector, ImageMask, InitialResult, InitialStream, full_size
from core.progress import Progress


def stream_recipe(
    dataset: Dataset, recipe: str, config: InitConfig, progress: Progress | None, *, route: str
) -> InitialStream:
    """Masks of every image by ``recipe`` (``cam``, ``grabcut`` or ``fused``), reported as ``route``,
    one image at a time in the dataset's order.

    The coarse maps are ``config.coarse`` (class CAMs for the ``cam`` recipe; a classifier they need is
    trained here, before the first image); ``info`` holds the recipe and what the maps were made from.
    The maps are made in this process as the images are consumed; the recipe (GrabCut, dense CRF) runs
    in ``config.workers`` processes (``core.refine.workers.map_ordered``: at most a few images in flight),
    and each result is resized to full size here as it arrives. Probabilities are ``None`` when
    ``config.keep_probs`` is off. ``progress`` hears of the setup (a classifier's training), not of the
    images: the consumer reports those.
    """
    from core.initial.coarse import CoarseMaps
    from core.initial.pipeline import image_probs_job
    from core.refine.workers import map_ordered, resolve_workers

    cmap = dataset.classmap
    k = cmap.num_classes
    coarse = "cam" if recipe == "cam" else config.coarse
    maps = CoarseMaps(dataset, cmap, config, coarse=coarse, progress=progress)
    centre = maps.source == "centre"
    n = len(dataset)

    def images() -> Iterator[ImageMask]:
        full_hw: dict[str, tuple[int, int]] = {}

        def jobs():  # coarse maps here (a network), made as the workers need them
            for s in dataset:
                classes = tuple(image_classes(s, cmap))
                image = s.load_image()
                full_hw[s.stem] = image.shape[:2]
                work = resize_longest(image, config.work_size)
                yield work, maps.cams(work, classes), classes, k, recipe, config, centre

        results = map_ordered(image_probs_job, jobs(), workers=resolve_workers(config.workers, n))
        for s, (_, (probs, score)) in zip(dataset, results):
            mask, full = full_size(probs, full_hw.pop(s.stem))
            yield s.stem, mask, full if config.keep_probs else None, float(np.clip(score, 0.0, 1.0))

    info = {"recipe": recipe, **maps.describe()}
    return InitialStream(images=images(), route=route, info=info, has_probs=config.keep_probs)


def run_recipe(
    dataset: Dataset, recipe: str, config: InitConfig, progress: Progress | None, *, route: str
) -> InitialResult:
    """``stream_recipe`` collected: every image's mask (and probabilities) at full size, each image
    reported to ``progress``."""
    stream = stream_recipe(dataset, recipe, config, progress, route=route)
    out = Collector(config.keep_probs)
    for i, (stem, mask, probs, score) in enumerate(stream.images):
        out.masks[stem] = mask
        if out.probs is not None and probs is not None:
            out.probs[stem] = probs
        out.scores[stem] = score
        if progress is not None:
            progress(f"initial masks ({recipe})", i + 1, len(dataset))
    return out.result(stream.route, stream.info)
