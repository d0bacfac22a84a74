"""Round r >= 1: train the GFN on round r-1's labels, predict, fuse, post-process, filter, write.

Everything a round reads comes from round r-1's folder (masks, quantised probabilities, scores,
weights), so a resumed run continues from exactly the inputs an uninterrupted one would have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core import __version__, memory
from core.data.dataset import Dataset
from core.initial.transfer import binarise_source_mask
from core.io.working import WorkingImage
from core.progress import Progress, prefixed
from core.refine import calibrate, filters, round_model, rundir
from core.refine import fixed as fixed_labels
from core.refine import records as rec
from core.refine.config import RunConfig, working_sizes
from core.refine.round_model import crop_size, train_config
from core.refine.workers import map_ordered, postprocess_one, resolve_workers
from core.training.data import capped_pairs

__all__ = ["crop_size", "gfn_config", "run_refine_round", "source_pairs", "train_config", "training_pairs"]

log = logging.getLogger(__name__)


def gfn_config(config: RunConfig, num_classes: int):
    """The rounds' ``GFNConfig`` (``config.network``) for ``num_classes`` classes."""
    return config.network.gfn_config(num_classes)


def previous_probs(prev_path: Path, stem: str, hw: tuple[int, ...]) -> np.ndarray:
    """The previous round's probabilities ``(K, h, w) float32`` of ``stem`` at this round's working size
    ``hw``: as stored, or resized (bilinear) when that round held the picture at another size (a run
    from before ``image_max_side``, resumed)."""
    from core.initial.resize import resize_probs

    probs = rundir.load_probs(prev_path / "probs" / f"{stem}.npz")
    return probs if probs.shape[1:] == tuple(hw) else resize_probs(probs, (int(hw[0]), int(hw[1])))


def training_pairs(
    dataset: Dataset, prev_path: Path, records: dict[str, rec.ImageRecord], config: RunConfig
) -> list[tuple[Path | WorkingImage, np.ndarray]]:
    """``(image path, label (h, w) uint8 with 255 = ignore)`` for the images selected to train, at the
    working size of ``dataset``'s samples (``Sample.image_source``, ``Sample.to_working``).

    Labels from a network round ignore uncertain and disagreeing pixels plus the boundary band;
    round-0 labels only the boundary band: the initial routes' scores (e.g. GrabCut's "probable
    background" inside its box) are not calibrated probabilities, and ignoring them would leave
    the object's surroundings without any background label.
    """
    from_network = prev_path.name != rundir.round_name(0)
    pairs = []
    for s in dataset:
        if not records[s.stem].train_next:
            continue
        mask = s.to_working(rec.previous_mask(prev_path, s.stem))  # written at the picture's size
        probs = previous_probs(prev_path, s.stem, mask.shape) if from_network else None
        label = filters.training_label(
            mask, probs, ignore_margin=config.filters.ignore_margin, band_fraction=config.filters.boundary_band
        )
        pairs.append((s.image_source, label))
    if not pairs:
        raise ValueError(f"round {prev_path.name} selected no image for training")
    return pairs


def source_pairs(dataset: Dataset, source: Dataset | None, config: RunConfig) -> list[tuple[Path, np.ndarray]]:
    """``config.source_images`` labelled source images (seeded choice) with their human masks in the
    target's class indices: as they are when the class maps agree, else foreground -> the target's
    single class. Empty when ``source_images`` is 0."""
    if config.source_images == 0:
        return []
    if not isinstance(source, Dataset):
        raise ValueError(
            f"source_images={config.source_images} needs a labelled source Dataset (--source "
            f"IMAGES_DIR MASKS_DIR), got {type(source).__name__}"
        )
    pool = [s for s in source if s.has_mask]
    if not pool:
        raise ValueError("the source has no ground-truth masks to train on")
    same = source.classmap == dataset.classmap
    if not same and len(dataset.classmap.foreground) != 1:
        raise ValueError(
            f"source classes {list(source.classmap.foreground)} differ from the target's "
            f"{list(dataset.classmap.foreground)}; mixing the source in needs a one-class target"
        )
    rng = np.random.default_rng(config.seed)
    pick = sorted(rng.choice(len(pool), size=min(config.source_images, len(pool)), replace=False))
    out = []
    for i in pick:
        m = pool[i].require_mask()
        out.append((Path(pool[i].image_path), m if same else binarise_source_mask(m)))
    return out


def train_round_model(
    dataset: Dataset,
    run_dir: Path,
    index: int,
    config: RunConfig,
    pairs: Sequence[tuple[Any, np.ndarray]],
    progress: Progress | None,
    n_human: int = 0,
):
    """Train and checkpoint round ``index``'s network (``core.refine.round_model``, warm-started from
    the previous round's when ``network.warm_start``); returns ``(model, {"epochs", "steps",
    "loss_per_epoch"})`` (the summary goes into the round's provenance)."""
    prev_ckpt = rundir.round_dir(run_dir, index - 1) / "model.pt"
    trained = round_model.train_round_model(
        pairs,
        dataset.classmap,
        config,
        round_index=index,
        out_path=rundir.round_dir(run_dir, index) / "model.pt",
        warm_start=prev_ckpt if config.network.warm_start else None,
        origin="run",
        n_human=n_human,
        progress=prefixed(progress, f"round {index}"),
    )
    return trained.model, {
        "epochs": trained.training.epochs,
        "steps": trained.training.steps,
        "loss_per_epoch": list(trained.losses),
    }


def predict_round(
    dataset: Dataset,
    prev_path: Path,
    index: int,
    config: RunConfig,
    model,
    prev_records: dict[str, rec.ImageRecord],
    progress: Progress | None,
) -> tuple[dict[str, np.ndarray], float]:
    """Predict every image (flip TTA), apply category consistency, fuse with the previous network
    round, and find the area-calibration offset (``core.refine.calibrate``).

    Returns ``({stem: quantised fused probs (L, H, W) uint8}, log-odds shift)``; the shift is 0.0
    unless ``config.post.calibrate_area``.
    """
    from core.training.predict import predict

    k = dataset.classmap.num_classes
    fused_q: dict[str, np.ndarray] = {}
    hists = []
    paths = [s.image_source for s in dataset]  # at the run's working size (image_max_side)
    preds = predict(model, paths, tta_flip=config.post.tta_flip, max_side=working_sizes(config).predict)
    for i, (s, pred) in enumerate(zip(dataset, preds)):
        allowed = rec.label_indices(s, dataset)
        fused = filters.consistent_probs(np.asarray(pred.probs, dtype=np.float32), allowed, config.post.consistency)
        if index > 1 and config.post.fuse > 0:  # fuse with the previous network round (round 0 is heuristic)
            prev_probs = previous_probs(prev_path, s.stem, fused.shape[1:])
            if prev_probs.shape != fused.shape:
                raise ValueError(f"prediction for {s.stem} has shape {fused.shape}, previous round {prev_probs.shape}")
            fused = (1.0 - config.post.fuse) * fused + config.post.fuse * prev_probs
        fused_q[s.stem] = rundir.quantise_probs(fused, allowed)
        if prev_records[s.stem].train_next:
            hists.append(calibrate.fg_histogram(rundir.dequantise_probs(fused_q[s.stem], allowed, k)))
        if progress is not None:
            progress(f"round {index}: predict", i + 1, len(dataset))
    if len(fused_q) != len(dataset):
        raise ValueError(f"prediction returned {len(fused_q)} results for {len(dataset)} images")
    shift = 0.0
    if config.post.calibrate_area:
        target = float(np.mean([r.area_ratio for r in prev_records.values() if r.train_next]))
        shift = calibrate.area_shift(hists, target)
        log.info("round %d: foreground log-odds shift %+.3f (training labels' mean area %.3f)", index, shift, target)
    return fused_q, shift


def run_refine_round(
    dataset: Dataset,
    run_dir: Path,
    index: int,
    config: RunConfig,
    *,
    progress: Progress | None,
    source: Dataset | None = None,
) -> dict[str, Any]:
    """Run round ``index`` (>= 1) into ``round_<index>/``; returns its ``seconds`` and ``provenance``.

    Pictures are held at ``config.post.image_max_side`` (``Dataset.capped``) for everything the round
    computes; its masks are written at each picture's own size."""
    dataset = dataset.capped(config.post.image_max_side)
    prev_path = rundir.round_dir(run_dir, index - 1)
    round_path = rundir.round_dir(run_dir, index)
    prev_records, prev_prov = rec.read_scores(prev_path)
    for r in prev_records.values():  # the filters' verdicts follow this run's settings
        r.in_area = filters.area_ok(r.area_ratio, config.filters.area_min, config.filters.area_max)
    rec.select_next(prev_records, config)
    fixed = fixed_labels.load(run_dir)  # human masks: always trained on, weighted (core.refine.fixed)
    fixed_labels.keep_for_training(prev_records, fixed)
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    pairs = training_pairs(dataset, prev_path, prev_records, config)
    pairs = fixed_labels.weighted_pairs(pairs, dataset, fixed, config.train.fixed_weight)
    extra = source_pairs(dataset, source, config)
    log.info(
        "round %d: training on %d of %d images%s",
        index,
        len(pairs),
        len(dataset),
        f" + {len(extra)} labelled source images" if extra else "",
    )
    at_size = capped_pairs([*pairs, *extra], config.post.image_max_side)  # human masks: at the pictures' size
    model, training = train_round_model(dataset, run_dir, index, config, at_size, progress)
    n_trained, n_source = len(pairs), len(extra)
    del pairs, extra, at_size  # every training label (the trainer's cache went when it returned)
    memory.release()
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    fused, shift = predict_round(dataset, prev_path, index, config, model, prev_records, progress)
    del model  # its ONNX Runtime session goes with it
    memory.release()
    seconds["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    records: dict[str, rec.ImageRecord] = {}
    k = dataset.classmap.num_classes

    def jobs():  # the calibrated probabilities of each image, in order, made as the workers need them
        for s in dataset:
            allowed = rec.label_indices(s, dataset)
            probs = calibrate.shift_probs(rundir.dequantise_probs(fused.pop(s.stem), allowed, k), shift)
            yield (s.image_source, probs, config.post.chain, config.post.params)

    n_workers = resolve_workers(config.post.workers, len(dataset)) if config.post.chain != "none" else 1
    posted = map_ordered(postprocess_one, jobs(), workers=n_workers)
    for i, (s, ((_, probs, _, _), mask)) in enumerate(zip(dataset, posted)):
        allowed = rec.label_indices(s, dataset)
        net_mask = probs.argmax(axis=0).astype(np.uint8)
        records[s.stem] = rec.finish_image(
            round_path,
            s.stem,
            mask=np.asarray(mask, dtype=np.uint8),
            probs=probs,
            net_mask=net_mask,
            allowed=allowed,
            previous=s.to_working(rec.previous_mask(prev_path, s.stem)),
            config=config,
            size=s.original_hw,
        )
        if progress is not None:
            progress(f"round {index}: post-process", i + 1, len(dataset))
    seconds["postprocess"] = time.perf_counter() - t
    rec.select_next(records, config)
    provenance = {
        "route": prev_prov.get("route"),
        "round": index,
        "model": f"{config.network.backbone}/round_{index:02d}",
        "engine": __version__,
        "trained_on": n_trained,
        "source_images": n_source,
        "checkpoint": "model.pt",
        "area_shift": shift,
        "training": training,
    }
    rec.write_scores(round_path, records, provenance)
    return {"seconds": seconds, "provenance": provenance, "records": records}
