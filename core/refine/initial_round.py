"""Round 0: initial masks from image-level labels (``core.initial``), filtered and written."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__
from core.data.dataset import Dataset
from core.initial.routes import ROUTES
from core.io.images import read_image
from core.progress import Progress
from core.refine import records as rec
from core.refine.config import RunConfig
from core.refine.postchain import postprocess

log = logging.getLogger(__name__)

NETWORK_ROUTES = tuple(name for name, route in ROUTES.items() if route.network)
"""Initial routes whose masks are a trained network's argmax (``RunConfig.init.postprocess`` applies)."""

SOFT_CONFIDENCE = 0.8
"""Probability given to a mask's own class when the initial route returns no probabilities."""


def soft_probs(mask: np.ndarray, num_classes: int, allowed: list[int]) -> np.ndarray:
    """``(K, H, W) float32`` from a hard mask: ``SOFT_CONFIDENCE`` on the mask's class, the rest spread
    over the image's other allowed classes. Ignore pixels (255) get a uniform split over ``allowed``."""
    k_allowed = len(allowed)
    out = np.zeros((num_classes, *mask.shape), dtype=np.float32)
    rest = (1.0 - SOFT_CONFIDENCE) / max(k_allowed - 1, 1)
    for c in allowed:
        out[c] = np.where(mask == c, SOFT_CONFIDENCE, rest)
    ign = mask == 255
    if ign.any():
        for c in allowed:
            out[c][ign] = 1.0 / k_allowed
    return out


def init_config(config: RunConfig):
    """``core.initial.InitConfig``: the run's ``init.options`` with the run's seed and threads."""
    return config.init.init_config(seed=config.seed, num_threads=config.num_threads)


SOURCE_MODEL = "source_model.pt"
"""Round 0's file with the network a transfer route trained on the labelled source (reusable by
another run: ``run --source-model RUN/round_00/source_model.pt``)."""


def save_source_model(path: Path, source_model: tuple[Any, Any], config: RunConfig) -> None:
    """Checkpoint the transfer route's source network ``(model, class map)`` at ``path``."""
    from core.network.checkpoint import InferenceSettings, TrainingRecord, save_checkpoint

    model, classmap = source_model
    opts = config.init.options
    save_checkpoint(
        path,
        model,
        model.config,
        classmap,
        inference=InferenceSettings(max_side=opts.work_size, tta_flip=opts.predict_flip, postprocess="none"),
        training=TrainingRecord(origin="source", engine=__version__, run_config=config.to_dict()),
    )
    log.info("saved the transfer source network to %s (reuse it with --source-model)", path)


def run_initial_round(
    dataset: Dataset, round_path: Path, config: RunConfig, *, source: Dataset | None, progress: Progress | None
) -> dict[str, Any]:
    """Make, filter and write round 0; returns its ``seconds`` and ``provenance``."""
    from core.initial import make_initial_masks

    t0 = time.perf_counter()
    init = make_initial_masks(
        dataset,
        route=config.init.route,
        source=config.init.source_model if config.init.source_model is not None else source,
        config=init_config(config),
        progress=progress,
    )
    t_init = time.perf_counter() - t0
    if init.source_model is not None:
        save_source_model(round_path / SOURCE_MODEL, init.source_model, config)
    missing = [s for s in dataset.stems if s not in init.masks]
    if missing:
        raise ValueError(f"initial route {init.route!r} returned no mask for {len(missing)} image(s): {missing[:5]}")
    t1 = time.perf_counter()
    records: dict[str, rec.ImageRecord] = {}
    k = dataset.classmap.num_classes
    refine = bool(
        config.init.postprocess and init.probs and init.route in NETWORK_ROUTES and config.post.chain != "none"
    )
    t_post = 0.0
    for i, s in enumerate(dataset):
        allowed = rec.label_indices(s, dataset)
        mask = np.asarray(init.masks[s.stem], dtype=np.uint8)
        probs = init.probs.get(s.stem) if init.probs else None
        if probs is None:
            probs = soft_probs(mask, k, allowed)
            net_mask = mask
        else:
            probs = np.asarray(probs, dtype=np.float32)
            if probs.shape != (k, *mask.shape):
                raise ValueError(
                    f"initial probabilities of {s.stem} have shape {probs.shape}, expected {(k, *mask.shape)}"
                )
            net_mask = probs.argmax(axis=0).astype(np.uint8)
            if refine:
                tp = time.perf_counter()
                mask = postprocess(read_image(s.image_path), probs, config.post.chain, params=config.post.params)[0]
                t_post += time.perf_counter() - tp
        base = float(np.clip(init.scores.get(s.stem, 0.5), 0.0, 1.0))
        records[s.stem] = rec.finish_image(
            round_path,
            s.stem,
            mask=mask,
            probs=probs,
            net_mask=net_mask,
            allowed=allowed,
            previous=None,
            config=config,
            base_score=base,
        )
        if progress is not None:
            progress("round 0: post-process and filter" if refine else "round 0: filter", i + 1, len(dataset))
    rec.select_next(records, config)
    provenance = {
        "route": init.route,
        "round": 0,
        "model": None,
        "engine": __version__,
        "init_info": _jsonable(init.info),
    }
    if refine:
        provenance["postprocess"] = config.post.chain
    rec.write_scores(round_path, records, provenance)
    seconds = {
        "initial": t_init,
        **({"postprocess": t_post} if refine else {}),
        "filter": time.perf_counter() - t1 - t_post,
    }
    return {"seconds": seconds, "provenance": provenance, "records": records}


def _jsonable(info: Any) -> Any:
    """Keep what JSON can hold of the initial route's ``info`` (numbers, strings, lists, dicts)."""
    if isinstance(info, dict):
        return {str(k): _jsonable(v) for k, v in info.items()}
    if isinstance(info, (list, tuple)):
        return [_jsonable(v) for v in info]
    if isinstance(info, (np.integer, np.floating)):
        return info.item()
    if info is None or isinstance(info, (str, int, float, bool)):
        return info
    return repr(info)
