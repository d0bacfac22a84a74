"""``make_initial_masks``: round-0 masks for a dataset by one of the routes of ``core.initial.routes``;
``stream_initial_masks``: the same, one image at a time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.labels import check_labels
from core.initial.result import ImageMask, InitialResult, InitialStream
from core.initial.routes import get_route
from core.progress import Progress
from core.threads import torch_threads

log = logging.getLogger(__name__)


def make_initial_masks(
    dataset: Dataset,
    *,
    route: str = "auto",
    source: Any = None,
    config: InitConfig = InitConfig(),
    progress: Progress | None = None,
) -> InitialResult:
    """Round-0 masks for every image of ``dataset`` from its image-level labels.

    Args:
        dataset: images with image-level labels (every image needs at least one).
        route: a name of ``core.initial.routes.ROUTES``: ``transfer`` (GFN trained on ``source``, or
            a torchvision VOC model), ``otsu`` (simple-to-complex), ``cam`` (CAM + dense CRF),
            ``grabcut`` (GrabCut seeded by the coarse map, in the box of ``config.box_mode``),
            ``auto`` (``transfer`` with a source, else ``AUTO_RECIPE``: GrabCut fused with the
            CRF'd coarse map).
        source: for ``transfer``: a labelled ``Dataset`` or its folder, or a torchvision model
            name (``deeplabv3_mobilenet_v3_large``, ``lraspp_mobilenet_v3_large``, ``fcn_resnet50``,
            ``voc`` = ``config.voc_model``).
        config: route settings.
        progress: ``callback(stage, done, total)``.

    Returns:
        ``InitialResult`` with masks ``(H, W) uint8`` and probabilities ``(K, H, W) float32`` at
        each image's full size, and per-image scores in [0, 1].
    """
    chosen = _checked(dataset, route, config)
    multi = [s.stem for s in dataset if len(s.labels) > 1]
    t0 = time.perf_counter()
    with torch_threads(config.num_threads):
        result = chosen.run(dataset, source=source, config=config, progress=progress)
    if multi and chosen.network:
        log.warning(
            "%d image(s) have several labels; route %s gives their foreground the first label", len(multi), result.route
        )
    seconds = time.perf_counter() - t0
    result.info["seconds"] = seconds
    result.info["seconds_per_image"] = seconds / len(dataset)
    return result


def stream_initial_masks(
    dataset: Dataset,
    *,
    route: str = "auto",
    source: Any = None,
    config: InitConfig = InitConfig(),
    progress: Progress | None = None,
) -> InitialStream:
    """``make_initial_masks`` one image at a time, in the dataset's order: a route with a ``stream``
    (the map routes: ``cam``, ``grabcut``, ``auto`` without a source) holds only the images in flight,
    whatever the dataset's size; the others (which train or load a network for the whole set) run
    whole here and are handed out image by image. Arguments and values as ``make_initial_masks``;
    ``info["seconds"]`` is the route's time once the stream is exhausted (not the consumer's)."""
    chosen = _checked(dataset, route, config)
    with torch_threads(config.num_threads):
        t0 = time.perf_counter()
        stream = chosen.stream(dataset, source=source, config=config, progress=progress) if chosen.stream else None
        setup = time.perf_counter() - t0
    if stream is None:
        return InitialStream.of_result(
            make_initial_masks(dataset, route=route, source=source, config=config, progress=progress), dataset.stems
        )
    inner = stream.images

    def images() -> Iterator[ImageMask]:
        seconds = setup
        while True:
            with torch_threads(config.num_threads):
                t = time.perf_counter()
                item = next(inner, None)
                seconds += time.perf_counter() - t
            if item is None:
                break
            yield item
        stream.info["seconds"] = seconds
        stream.info["seconds_per_image"] = seconds / len(dataset)

    stream.images = images()
    return stream


def _checked(dataset: Dataset, route: str, config: InitConfig):
    """The route called ``route`` once ``dataset`` and ``config`` are checked (``ValueError`` /
    ``TypeError`` naming what is wrong)."""
    chosen = get_route(route)
    if not isinstance(config, InitConfig):
        raise TypeError(f"config must be an InitConfig, got {type(config).__name__}")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a core.data.dataset.Dataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("the dataset holds no images")
    check_labels(dataset.samples, dataset.classmap)
    return chosen
