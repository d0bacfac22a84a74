"""Training the GFN on (image, mask) pairs: cross-entropy (ignore 255), the recipe of a
:class:`TrainConfig` (AdamW with a cosine schedule by default, SGD with step decay as before).

Deterministic for a given seed (shuffling and augmentation are drawn from ``(seed, epoch, index)``),
graceful on Ctrl-C (the model is rolled back to the last good state and the checkpoint on disk is
left as it was), optional time budget, DDP under ``torchrun``.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from core import __version__
from core.classmap import IGNORE_INDEX, ClassMap
from core.network.backbones import freeze_stages
from core.network.checkpoint import TrainingRecord, save_checkpoint
from core.network.config import GFNConfig
from core.progress import Progress
from core.training import distributed as D
from core.training.config import DEFAULT_FROZEN_STAGES, TrainConfig
from core.training.data import Pair, PairDataset
from core.training.schedule import build_optimizer, lr_factor

__all__ = ["TrainConfig", "TrainResult", "segmentation_loss", "set_train_mode", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run did. ``stopped_reason`` is ``"done"``, ``"time_budget"`` or ``"interrupted"``
    (Ctrl-C: the model holds the last good state, i.e. the last epoch's weights)."""

    epochs_done: int
    iterations: int
    losses: list[float]
    stopped_reason: str
    seconds: float
    images_per_s: float
    checkpoint: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan


class _EpochSampler(Sampler[int]):
    """A seeded permutation per epoch (``set_epoch``), like ``DistributedSampler`` on one process."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def set_train_mode(model: nn.Module, freeze_bn: bool, frozen_stages: int = 0) -> None:
    """``model.train()``, then backbone BatchNorm layers back to eval mode when ``freeze_bn``, and
    the first ``frozen_stages`` backbone stages wholly in eval mode (they are not trained)."""
    model.train()
    backbone = getattr(_unwrap(model), "backbone", None)
    if backbone is None:
        return
    if freeze_bn:
        for m in backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    for stage in backbone.stages()[:frozen_stages] if frozen_stages else []:
        stage.eval()


def _param_groups(model: nn.Module, lr: float, mult: float) -> list[dict[str, Any]]:
    backbone = getattr(model, "backbone", None)
    bb = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [
        {"params": [p for p in params if id(p) in bb], "lr_mult": mult},
        {"params": [p for p in params if id(p) not in bb], "lr_mult": 1.0},
    ]
    groups = [g for g in groups if g["params"]]
    for g in groups:
        g["lr"] = lr * g["lr_mult"]
    return groups


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel cross-entropy (eq. 5) over non-ignored pixels; 0 when all are ignored.

    ``logits (N, K, H, W)``, ``target (N, H, W)`` int64 with 255 = ignore.
    """
    total = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (target != IGNORE_INDEX).sum().clamp(min=1)
    return total / count


def _num_classes(model: nn.Module, gfn_config: GFNConfig | None) -> int:
    if gfn_config is not None:
        return gfn_config.num_classes
    cfg = getattr(model, "config", None)
    if isinstance(cfg, GFNConfig):
        return cfg.num_classes
    raise ValueError("cannot tell the number of classes: pass gfn_config (the model has no .config)")


def _schedule(config: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """``(epochs, step_epochs)``: the configured ones, stretched so at least ``min_steps`` are run."""
    epochs = max(config.epochs, math.ceil(config.min_steps / max(steps_per_epoch, 1)))
    step_epochs = max(1, round(config.step_epochs * epochs / config.epochs))
    return epochs, step_epochs


def _freezing(config: TrainConfig, model: nn.Module, gfn_config: GFNConfig | None) -> tuple[bool, int]:
    """``(freeze_bn, frozen_stages)`` with their ``None`` defaults resolved from the backbone's init."""
    pretrained = bool(getattr(gfn_config, "pretrained", True))
    freeze_bn = pretrained if config.freeze_bn is None else config.freeze_bn
    stages = config.freeze_stages if config.freeze_stages is not None else (DEFAULT_FROZEN_STAGES if pretrained else 0)
    if stages and not hasattr(getattr(model, "backbone", None), "stages"):
        if config.freeze_stages is not None:
            raise ValueError(f"freeze_stages={stages} needs a model with a .backbone that has stages()")
        stages = 0
    return freeze_bn, stages


@dataclass
class _Run:
    """The mutable state of one training run."""

    config: TrainConfig
    t0: float
    total: int
    step: int = 0
    seen: int = 0
    stopped: str = "done"

    def fraction(self) -> float:
        """How much of the run is done: of the time budget, or of the planned steps."""
        if self.config.until_budget:
            return (time.perf_counter() - self.t0) / float(self.config.time_budget_s or 1)
        return self.step / max(self.total, 1)

    def progress_total(self) -> int:
        """Total steps for the progress callback (estimated from the speed so far under a budget)."""
        if not self.config.until_budget:
            return self.total
        return max(self.step, round(self.step / max(self.fraction(), 1e-9)))


def train(
    model: nn.Module,
    pairs: Sequence[Pair],
    config: TrainConfig = TrainConfig(),
    *,
    progress: Progress | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    classmap: ClassMap | None = None,
    gfn_config: GFNConfig | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``pairs`` (each ``(image, mask)``, a path or an array).

    Args:
        model: a GFN (``build_model``) or any module mapping ``(N, 3, H, W) -> (N, K, H, W)``.
        pairs: images ``(H, W, 3) uint8`` / paths and class-index masks (255 = ignore).
        config: the recipe.
        progress: ``progress("train", step, total_steps)`` after each step (rank 0 only); under a
            time budget the total is estimated from the speed so far.
        checkpoint_path: write a checkpoint here after every epoch and at a time-budget stop.
        classmap, gfn_config: stored in the checkpoint (defaults: ``model.config`` and
            ``background, class_1, ...``).

    Returns:
        A :class:`TrainResult`. Ctrl-C does not raise: training stops, the model is restored to its
        last good state and ``stopped_reason == "interrupted"``. The model is given back in eval
        mode, in the default memory format, with every parameter trainable as it was.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    gfn_config = gfn_config if gfn_config is not None else getattr(model, "config", None)
    num_classes = _num_classes(model, gfn_config)
    if checkpoint_path is not None:
        if not isinstance(gfn_config, GFNConfig):
            raise ValueError("checkpoint_path needs gfn_config (the model has no GFNConfig .config)")
        if classmap is None:
            classmap = ClassMap(("background", *[f"class_{i}" for i in range(1, num_classes)]))
    freeze_bn, n_frozen = _freezing(config, model, gfn_config)
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    ds = PairDataset(
        pairs,
        num_classes=num_classes,
        crop_size=config.crop_size,
        scale_range=config.scale_range,
        max_side=config.max_side,
        seed=config.seed,
    )
    if config.cache_images:
        held = ds.preload()
        log.info("decoded %d pairs once: %.0f MB in memory (%.1fs)", len(ds), held / 2**20, time.perf_counter() - t0)
    device = D.pick_device(config.device)
    info = D.setup_distributed(device)
    model.to(device)
    frozen = freeze_stages(cast(Any, model.backbone), n_frozen) if n_frozen else []
    try:
        if config.channels_last:
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs omit it
        return _train_loop(
            model, ds, config, info, device, t0, freeze_bn, n_frozen, progress, checkpoint_path, classmap, gfn_config
        )
    finally:
        model.eval()
        for p in frozen:
            p.requires_grad_(True)
        if config.channels_last:
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # as above


def _train_loop(
    model: nn.Module,
    ds: PairDataset,
    config: TrainConfig,
    info: D.DistInfo,
    device: torch.device,
    t0: float,
    freeze_bn: bool,
    n_frozen: int,
    progress: Progress | None,
    checkpoint_path: str | os.PathLike | None,
    classmap: ClassMap | None,
    gfn_config: GFNConfig | None,
) -> TrainResult:
    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler: DistributedSampler | _EpochSampler = (
        DistributedSampler(ds, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=config.seed)
        if info.enabled
        else _EpochSampler(len(ds), config.seed)
    )
    loader = DataLoader(
        ds, batch_size=config.batch_size, sampler=sampler, num_workers=config.num_workers, drop_last=False
    )
    steps_per_epoch = len(loader)
    epochs, step_epochs = _schedule(config, steps_per_epoch)
    run = _Run(config, t0, steps_per_epoch * epochs)
    opt = build_optimizer(config, _param_groups(model, config.lr, config.backbone_lr_mult))
    fmt = torch.channels_last if config.channels_last else torch.contiguous_format

    last_good = copy.deepcopy(model.state_dict())
    losses: list[float] = []
    history: list[dict[str, Any]] = []
    saved = None
    plan = f"until the {config.time_budget_s:.0f}s budget" if config.until_budget else f"{epochs} epochs"
    log.info(
        "training on %d pairs %s, %d steps per epoch (%s %s, batch %d, crop %d, %d backbone stages frozen, %s%s)",
        len(ds),
        plan,
        steps_per_epoch,
        config.optimizer,
        config.schedule,
        config.batch_size,
        config.crop_size,
        n_frozen,
        device,
        f", {info.world_size} processes" if info.enabled else "",
    )

    def checkpoint(epoch: int, loss: float) -> None:
        nonlocal saved
        if checkpoint_path is not None and info.is_main:
            assert gfn_config is not None and classmap is not None  # set by train() with checkpoint_path
            saved = save_checkpoint(
                checkpoint_path,
                model,
                gfn_config,
                classmap,
                training=TrainingRecord(
                    origin="train",
                    engine=__version__,
                    train_config=config.to_dict(),
                    epochs=epoch,
                    steps=run.step,
                    seconds=round(time.perf_counter() - t0, 1),
                    loss=round(loss, 6),
                ),
            )
        D.barrier(info)

    try:
        for epoch in itertools.count() if config.until_budget else range(epochs):
            ds.epoch = epoch
            sampler.set_epoch(epoch)
            set_train_mode(net, freeze_bn, n_frozen)
            run_loss, n_batches, te, lr_now = 0.0, 0, time.perf_counter(), config.lr
            for x, y in loader:
                lr_now = config.lr * lr_factor(config, run.fraction(), epoch, step_epochs)
                for g in opt.param_groups:
                    g["lr"] = lr_now * g["lr_mult"]
                x, y = x.to(device, non_blocking=True, memory_format=fmt), y.to(device, non_blocking=True)
                loss = segmentation_loss(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                run_loss += float(loss.detach())
                n_batches += 1
                run.step += 1
                run.seen += x.shape[0]
                if progress is not None and info.is_main:
                    progress("train", run.step, run.progress_total())
                over = config.time_budget_s is not None and time.perf_counter() - t0 > config.time_budget_s
                if D.any_rank(over, info):
                    run.stopped = "time_budget"
                    break
            mean_loss = run_loss / max(n_batches, 1)
            losses.append(mean_loss)
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": mean_loss,
                    "lr": lr_now,
                    "steps": n_batches,
                    "seconds": round(time.perf_counter() - te, 3),
                }
            )
            log.info(
                "epoch %d%s: loss %.4f lr %.2g (%.1fs)",
                epoch + 1,
                "" if config.until_budget else f"/{epochs}",
                mean_loss,
                lr_now,
                time.perf_counter() - te,
            )
            D.sync_buffers(model, info)
            checkpoint(epoch + 1, mean_loss)
            last_good = copy.deepcopy(model.state_dict())
            if run.stopped != "done":
                log.info("time budget of %.0fs reached after %d steps", config.time_budget_s, run.step)
                break
    except KeyboardInterrupt:
        run.stopped = "interrupted"
        model.load_state_dict(last_good)
        log.warning(
            "training interrupted after %d steps; model restored to its last good state%s",
            run.step,
            f" (checkpoint {saved})" if saved else "",
        )
    secs = time.perf_counter() - t0
    return TrainResult(
        epochs_done=len(losses),
        iterations=run.step,
        losses=losses,
        stopped_reason=run.stopped,
        seconds=secs,
        images_per_s=run.seen * info.world_size / secs if secs > 0 else 0.0,
        checkpoint=saved,
        history=history,
    )
