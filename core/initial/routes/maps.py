"""The dataset loop of the map-based routes (``cam``, ``grabcut``, ``auto`` without a source):
coarse maps per image, then a per-image recipe of ``core.initial.pipeline``."""

from __future__ import annotations

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.labels import image_classes
from core.initial.resize import resize_longest
from core.initial.result import Collector, InitialResult
from core.progress import Progress


def run_recipe(
    dataset: Dataset, recipe: str, config: InitConfig, progress: Progress | None, *, route: str
) -> InitialResult:
    """Masks of every image by ``recipe`` (``cam``, ``grabcut`` or ``fused``), reported as ``route``.

    The coarse maps are ``config.coarse`` (class CAMs for the ``cam`` recipe); ``info`` holds the
    recipe and what the maps were made from.
    """
    from core.initial.coarse import CoarseMaps
    from core.initial.pipeline import image_probs

    cmap = dataset.classmap
    k = cmap.num_classes
    coarse = "cam" if recipe == "cam" else config.coarse
    maps = CoarseMaps(dataset, cmap, config, coarse=coarse, progress=progress)
    out = Collector(config.keep_probs)
    n = len(dataset)
    for i, s in enumerate(dataset):
        classes = image_classes(s, cmap)
        image = s.load_image()
        work = resize_longest(image, config.work_size)
        cams = maps.cams(work, classes)
        probs, score, _ = image_probs(work, cams, classes, k, recipe, config, centre=maps.source == "centre")
        out.add(s.stem, probs, image.shape[:2], score)
        if progress is not None:
            progress(f"initial masks ({recipe})", i + 1, n)
    return out.result(route, {"recipe": recipe, **maps.describe()})
