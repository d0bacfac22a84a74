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
from core.progress import Progress
from core.refine import records as rec
from core.refine.config import RunConfig
from core.refine.workers import map_ordered, postprocess_one, resolve_workers

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
    """``core.initial.InitConfig``: the run's ``init.options`` with the run's seed, threads and worker
    processes (``post.workers``)."""
    return config.init.init_config(seed=config.seed, num_threads=config.num_threads, workers=config.post.workers)


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
    """Make, filter and write round 0; returns its ``seconds`` and ``provenance``.

    Pictures are held at ``config.post.image_max_side`` (``Dataset.capped``) for everything the round
    computes; its masks are written at each picture's own size."""
    from core.initial import stream_initial_masks

    dataset = dataset.capped(config.post.image_max_side)
    source = source.capped(config.post.image_max_side) if isinstance(source, Dataset) else source
    t0 = time.perf_counter()
    init = stream_initial_masks(  # the map routes hold a few images at a time, whatever the set's size
        dataset,
        route=config.init.route,
        source=config.init.source_model if config.init.source_model is not None else source,
        config=init_config(config),
        progress=progress,
    )
    t_route = time.perf_counter() - t0  # the route's time: setup here, then its images as they come
    if init.source_model is not None:
        save_source_model(round_path / SOURCE_MODEL, init.source_model, config)
    t1, t_setup = time.perf_counter(), t_route
    records: dict[str, rec.ImageRecord] = {}
    k = dataset.classmap.num_classes
    refine = bool(
        config.init.postprocess and init.has_probs and init.route in NETWORK_ROUTES and config.post.chain != "none"
    )

    def route_output(s) -> tuple[np.ndarray, np.ndarray, bool, float]:
        """The route's ``(mask (H, W) uint8, probs (K, H, W) float32, from a network, score)`` of one
        image (soft probabilities from the mask when the route gave none)."""
        nonlocal t_route
        t = time.perf_counter()
        item = next(init.images, None)
        t_route += time.perf_counter() - t
        if item is None or item[0] != s.stem:
            raise ValueError(
                f"initial route {init.route!r} returned no mask for image {s.stem!r} (got "
                f"{'nothing' if item is None else repr(item[0])} in its place)"
            )
        _, mask, probs, score = item
        mask = np.asarray(mask, dtype=np.uint8)
        if probs is None:
            return mask, soft_probs(mask, k, rec.label_indices(s, dataset)), False, score
        probs = np.asarray(probs, dtype=np.float32)
        if probs.shape != (k, *mask.shape):
            raise ValueError(f"initial probabilities of {s.stem} have shape {probs.shape}, expected {(k, *mask.shape)}")
        return mask, probs, True, score

    def jobs():  # (mask, probs, from a network, score) + what the post-processing workers run, as they need it
        for s in dataset:
            out = route_output(s)
            path = s.image_source if refine and out[2] else None  # read at the working size
            yield out, (path, out[1], config.post.chain, config.post.params)

    n_workers = resolve_workers(config.post.workers, len(dataset)) if refine else 1
    if init.lazy:  # the route's images are made in this loop: one stage for both
        stage = f"round 0: initial masks ({init.info.get('recipe', init.route)}) and filter"
    else:
        stage = "round 0: post-process and filter" if refine else "round 0: filter"
    t_filter = 0.0
    for i, (s, (((mask, probs, network, score), _), post_mask)) in enumerate(
        zip(dataset, map_ordered(_postprocess_job, jobs(), workers=n_workers))
    ):
        tf = time.perf_counter()
        net_mask = probs.argmax(axis=0).astype(np.uint8) if network else mask
        base = float(np.clip(score, 0.0, 1.0))
        records[s.stem] = rec.finish_image(
            round_path,
            s.stem,
            mask=mask if post_mask is None else post_mask,
            probs=probs,
            net_mask=net_mask,
            allowed=rec.label_indices(s, dataset),
            previous=None,
            config=config,
            base_score=base,
            size=s.original_hw,
        )
        if progress is not None:
            progress(stage, i + 1, len(dataset))
        t_filter += time.perf_counter() - tf
    extra = next(init.images, None)  # the route's end (its info["seconds"])
    if extra is not None:
        raise ValueError(f"initial route {init.route!r} returned a mask for an unknown image {extra[0]!r}")
    t_loop = time.perf_counter() - t1
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
    t_in_loop = t_route - t_setup  # the route's share of the loop
    seconds = {
        "initial": t_route,
        **({"postprocess": t_loop - t_in_loop - t_filter} if refine else {}),
        "filter": t_filter if refine else t_loop - t_in_loop,
    }
    return {"seconds": seconds, "provenance": provenance, "records": records}


def _postprocess_job(job: tuple[Any, tuple[Any, Any, str, Any]]):
    """A worker's part of one round-0 image: the ``post.chain`` mask ``(H, W) uint8`` of its network
    probabilities (``core.refine.workers.postprocess_one``), or ``None`` when it has no image path
    (no post-processing for it)."""
    path, probs, chain, params = job[1]
    return None if path is None else postprocess_one((path, probs, chain, params))


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
