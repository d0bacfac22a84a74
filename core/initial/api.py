"""``make_initial_masks``: round-0 masks for a dataset by one of the routes of ``core.initial.routes``."""

from __future__ import annotations

import logging
import time
from typing import Any

from core.data.dataset import Dataset
from core.initial.config import InitConfig
from core.initial.labels import check_labels
from core.initial.result import InitialResult
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
    chosen = get_route(route)
    if not isinstance(config, InitConfig):
        raise TypeError(f"config must be an InitConfig, got {type(config).__name__}")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a core.data.dataset.Dataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("the dataset holds no images")
    check_labels(dataset.samples, dataset.classmap)
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
