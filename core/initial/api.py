"""``make_initial_masks``: round-0 masks for a dataset by one of the routes."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.data.dataset import Dataset
from core.initial.common import (check_labels, fg_to_probs, image_classes, keep_classes, margin_confidence,
                                 onehot, resize_longest, resize_mask, resize_probs, torch_threads)
from core.initial.config import ROUTES, InitConfig

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

AUTO_RECIPE = "fused"
"""What ``route="auto"`` runs without a source (chosen on bench/initial_routes.py): GrabCut in the
centred box seeded by the coarse map (class-agnostic top-k CAM, or the trained classifier's CAM
with several classes), fused 0.6/0.4 with the dense-CRF'd map, then dense CRF once more."""


@dataclass
class InitialResult:
    """Round-0 masks of a dataset.

    Attributes:
        masks: ``{stem: (H, W) uint8}`` class indices at each image's full size.
        probs: ``{stem: (K, H, W) float32}`` or ``None`` (``InitConfig.keep_probs=False`` or a
            route without probabilities).
        scores: ``{stem: float in [0, 1]}`` confidence of each mask.
        route: the route that ran: ``auto`` with a source reports ``transfer``; without one it stays
            ``auto`` and ``info["recipe"]`` names what ran.
        info: route details, e.g. ``n_simple`` / ``simple_stems`` for ``otsu``, ``seconds``.
    """

    masks: dict[str, np.ndarray]
    probs: dict[str, np.ndarray] | None
    scores: dict[str, float]
    route: str
    info: dict[str, Any] = field(default_factory=dict)


class _Collector:
    """Accumulates full-size results per stem."""

    def __init__(self, keep_probs: bool):
        self.masks: dict[str, np.ndarray] = {}
        self.probs: dict[str, np.ndarray] | None = {} if keep_probs else None
        self.scores: dict[str, float] = {}

    def add(self, stem: str, probs: np.ndarray, full_hw: tuple[int, int], score: float,
            mask: np.ndarray | None = None) -> None:
        """Store working-size ``probs`` (and optionally a hard ``mask``) resized to ``full_hw``."""
        p = resize_probs(probs, full_hw)
        self.masks[stem] = resize_mask(mask, full_hw) if mask is not None else p.argmax(0).astype(np.uint8)
        if self.probs is not None:
            self.probs[stem] = p
        self.scores[stem] = float(np.clip(score, 0.0, 1.0))

    def result(self, route: str, info: dict) -> InitialResult:
        return InitialResult(masks=self.masks, probs=self.probs, scores=self.scores, route=route, info=info)


def _tick(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _map_route(dataset: Dataset, kind: str, cfg: InitConfig, progress: Progress | None) -> InitialResult:
    """Routes built on coarse maps: ``cam``, ``grabcut`` and the fused recipe."""
    from core.initial.coarse import CoarseMaps
    from core.initial.pipeline import image_probs

    cmap = dataset.classmap
    k = cmap.num_classes
    coarse = "cam" if kind == "cam" else cfg.coarse
    maps = CoarseMaps(dataset, cmap, cfg, coarse=coarse, progress=progress)
    out = _Collector(cfg.keep_probs)
    n = len(dataset)
    for i, s in enumerate(dataset):
        classes = image_classes(s, cmap)
        image = s.load_image()
        work = resize_longest(image, cfg.work_size)
        cams = maps.cams(work, classes)
        probs, score, _ = image_probs(work, cams, classes, k, kind, cfg, centre=maps.source == "centre")
        out.add(s.stem, probs, image.shape[:2], score)
        _tick(progress, f"initial masks ({kind})", i + 1, n)
    return out.result(kind, {"recipe": kind, **maps.describe()})


def _otsu_route(dataset: Dataset, cfg: InitConfig, progress: Progress | None) -> InitialResult:
    from core.initial.gfn_bridge import predict_gfn, train_gfn
    from core.initial.otsu import ignore_band, otsu_mask, pick_simple

    cmap = dataset.classmap
    k = cmap.num_classes
    samples = list(dataset)
    masks, stats = [], []
    for i, s in enumerate(samples):
        fg, st = otsu_mask(resize_longest(s.load_image(), cfg.work_size), cfg)
        masks.append(fg)
        stats.append(st)
        _tick(progress, "otsu", i + 1, len(samples))
    if cfg.simple_stems is not None:
        index = {s.stem: i for i, s in enumerate(samples)}
        unknown = [st for st in cfg.simple_stems if st not in index]
        if unknown:
            raise ValueError(f"simple_stems names images not in the dataset: {unknown[:10]}")
        picked = sorted(index[st] for st in cfg.simple_stems)
        how = "user"
    else:
        picked = pick_simple(stats, cfg)
        how = "auto"
    if not picked:
        raise ValueError("no simple-background image found for the otsu route; pass simple_stems")
    log.info("otsu route: %d of %d images treated as simple (%s)", len(picked), len(samples), how)
    pairs = [(resize_longest(samples[i].load_image(), cfg.work_size),
              ignore_band(masks[i].astype(np.uint8), cfg.ignore_band)) for i in picked]
    model = train_gfn(pairs, 2, cfg, progress=progress)
    out = _Collector(cfg.keep_probs)
    picked_set = set(picked)
    for i in picked:
        s = samples[i]
        c = image_classes(s, cmap)[0]
        full_hw = _full_hw(s)
        out.add(s.stem, onehot(masks[i].astype(np.uint8) * c, k, soft=0.1), full_hw,
                stats[i].separability, mask=masks[i].astype(np.uint8) * c)
    rest = [i for i in range(len(samples)) if i not in picked_set]
    preds = predict_gfn(model, [samples[i].image_path for i in rest], cfg, progress=progress)
    for i, pred in zip(rest, preds):
        s = samples[i]
        c = image_classes(s, cmap)[0]
        probs = fg_to_probs(pred.probs[1], c, k)
        out.add(s.stem, probs, probs.shape[1:], margin_confidence(probs))
    info = {"n_simple": len(picked), "simple_stems": [samples[i].stem for i in picked], "simple_picked_by": how,
            "simple_stats": {samples[i].stem: vars(stats[i]) for i in range(len(samples))}}
    return out.result("otsu", info)


def _full_hw(sample) -> tuple[int, int]:
    from core.io.images import image_size

    return image_size(sample.image_path)


def _load_source(source: Any) -> Dataset:
    if isinstance(source, Dataset):
        return source
    if isinstance(source, (str, os.PathLike)) and Path(source).exists():
        from core.data.readers import load_dataset

        return load_dataset(source)
    raise ValueError(f"source must be a Dataset, a dataset folder or a torchvision VOC model name; got {source!r}")


def _transfer_voc(dataset: Dataset, model_name: str, cfg: InitConfig, progress: Progress | None) -> InitialResult:
    from core.initial.transfer import load_voc_model, voc_class, voc_foreground

    cmap = dataset.classmap
    k = cmap.num_classes
    model = load_voc_model(model_name, cfg.voc_weights)
    mapping = {c: voc_class(cmap.names[c], cfg.voc_map) for c in range(1, k)}
    out = _Collector(cfg.keep_probs)
    for i, s in enumerate(dataset):
        classes = image_classes(s, cmap)
        image = s.load_image()
        work = resize_longest(image, cfg.work_size)
        probs = np.zeros((k, *work.shape[:2]), np.float32)
        fgs = np.stack([voc_foreground(model, work, mapping[c], flip=cfg.predict_flip) for c in classes])
        probs[0] = np.clip(1.0 - fgs.max(0), 0.0, 1.0)
        for j, c in enumerate(classes):
            probs[c] = fgs[j]
        probs /= np.maximum(probs.sum(0, keepdims=True), 1e-8)
        out.add(s.stem, probs, image.shape[:2], margin_confidence(probs))
        _tick(progress, "initial masks (transfer)", i + 1, len(dataset))
    info = {"source": f"torchvision:{model_name}", "weights": cfg.voc_weights,
            "voc_classes": {cmap.names[c]: v or "any" for c, v in mapping.items()}}
    return out.result("transfer", info)


def _transfer_route(dataset: Dataset, source: Any, cfg: InitConfig, progress: Progress | None) -> InitialResult:
    from core.initial.transfer import VOC_MODELS, binarise_source_mask

    if source is None:
        raise ValueError("route 'transfer' needs a source: a labelled Dataset (or its folder) of a related class, "
                         f"or a torchvision VOC model name {list(VOC_MODELS)} (or 'voc')")
    if isinstance(source, str) and not Path(source).exists():
        name = source.split(":", 1)[1] if source.startswith("torchvision:") else source
        name = cfg.voc_model if name == "voc" else name
        return _transfer_voc(dataset, name, cfg, progress)
    from core.initial.gfn_bridge import predict_gfn, train_gfn

    src = _load_source(source).with_gt()
    if len(src) == 0:
        raise ValueError("the transfer source has no ground-truth masks (Sample.mask_path / mask_fn)")
    cmap = dataset.classmap
    k = cmap.num_classes
    same = src.classmap == cmap and k > 2
    pairs = []
    for s in src:
        m = s.load_mask()
        pairs.append((s.image_path, m if same else binarise_source_mask(m)))
    model = train_gfn(pairs, k if same else 2, cfg, progress=progress)
    out = _Collector(cfg.keep_probs)
    samples = list(dataset)
    for s, pred in zip(samples, predict_gfn(model, [s.image_path for s in samples], cfg, progress=progress)):
        classes = image_classes(s, cmap)
        if same:
            probs = keep_classes(pred.probs, classes)
        else:
            probs = fg_to_probs(pred.probs[1], classes[0], k)
        out.add(s.stem, probs, probs.shape[1:], margin_confidence(probs))
    info = {"source": "dataset", "source_images": len(src), "source_classes": list(src.classmap.names),
            "binarised": not same}
    return out.result("transfer", info)


def make_initial_masks(dataset: Dataset, *, route: str = "auto", source: Any = None,
                       config: InitConfig = InitConfig(), progress: Progress | None = None) -> InitialResult:
    """Round-0 masks for every image of ``dataset`` from its image-level labels.

    Args:
        dataset: images with image-level labels (every image needs at least one).
        route: ``transfer`` (GFN trained on ``source``, or a torchvision VOC model), ``otsu``
            (simple-to-complex), ``cam`` (CAM + dense CRF), ``grabcut`` (GrabCut seeded by the coarse
            map, in the box of ``config.box_mode``), ``auto`` (``transfer`` with a source, else
            ``AUTO_RECIPE``: GrabCut fused with the CRF'd coarse map).
        source: for ``transfer``: a labelled ``Dataset`` or its folder, or a torchvision model
            name (``deeplabv3_mobilenet_v3_large``, ``lraspp_mobilenet_v3_large``, ``fcn_resnet50``,
            ``voc`` = ``config.voc_model``).
        config: route settings.
        progress: ``callback(stage, done, total)``.

    Returns:
        ``InitialResult`` with masks ``(H, W) uint8`` and probabilities ``(K, H, W) float32`` at
        each image's full size, and per-image scores in [0, 1].
    """
    if route not in ROUTES:
        raise ValueError(f"unknown initial route {route!r}; valid routes: {list(ROUTES)}")
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
        if route == "auto":
            result = (_transfer_route(dataset, source, config, progress) if source is not None
                      else _map_route(dataset, AUTO_RECIPE, config, progress))
            result.info["auto"] = result.route
            result.route = result.route if source is not None else "auto"
        elif route == "transfer":
            result = _transfer_route(dataset, source, config, progress)
        elif route == "otsu":
            result = _otsu_route(dataset, config, progress)
        else:
            result = _map_route(dataset, route, config, progress)
    if multi and route in ("otsu", "transfer"):
        log.warning("%d image(s) have several labels; route %s gives their foreground the first label",
                    len(multi), result.route)
    seconds = time.perf_counter() - t0
    result.info["seconds"] = seconds
    result.info["seconds_per_image"] = seconds / len(dataset)
    return result
