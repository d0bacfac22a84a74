"""``TrainConfig``: the training recipe (frozen, serialisable)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config import check_known_fields

OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
SCHEDULES: tuple[str, ...] = ("cosine", "step")

LEGACY_RECIPE: dict[str, Any] = dict(
    optimizer="sgd",
    lr=0.007,
    momentum=0.9,
    weight_decay=2e-4,
    schedule="step",
    step_epochs=5,
    warmup_fraction=0.0,
    backbone_lr_mult=1.0,
    freeze_stages=0,
    channels_last=False,
    cache_images=False,
    crop_size=321,
    max_side=512,
)
"""The recipe before issue 10 (paper 001's SGD with step decay, everything trained, images decoded
every epoch): ``TrainConfig.legacy()``, and the values a stored config without an ``optimizer`` key
was trained with (``TrainConfig.from_saved``)."""


DEFAULT_FROZEN_STAGES = 4
"""Backbone stages frozen by default when the backbone is pretrained (``TrainConfig.freeze_stages``)."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training recipe. Defaults: AdamW (lr 3e-3, backbone at 0.1x) with a cosine schedule, the first
    four backbone stages frozen, frozen backbone BatchNorm, channels-last tensors, 256-pixel crops
    from images downscaled to 320 pixels and decoded once per run (measurements in
    ``docs/RESULTS.md``, "Training recipe").
    ``TrainConfig.legacy()`` is paper 001's SGD recipe that preceded it.

    Attributes:
        epochs: passes over the pairs (ignored by a cosine schedule with ``time_budget_s``).
        optimizer: ``"adamw"`` (decoupled weight decay) or ``"sgd"`` (``momentum``, L2 decay).
        lr: peak learning rate of the head; the backbone's is ``lr * backbone_lr_mult``.
        schedule: ``"cosine"``: lr from the peak to 0 along a half cosine over the run (the fraction
            of the steps done, or of ``time_budget_s`` elapsed when a budget is set); ``"step"``:
            divide by 10 every ``step_epochs`` epochs.
        warmup_fraction: cosine only: the lr rises linearly from 0 over this fraction of the run.
        crop_size: training crop side; smaller images are padded (padding ignored in the loss).
        scale_range: random rescale factor range applied after ``max_side``.
        max_side: downscale images whose longer side exceeds this before augmentation (None = never):
            the working size.
        freeze_bn: keep the backbone's BatchNorm statistics fixed (eval-mode BN), as batches are small
            on CPU. ``None`` (default) = freeze when the backbone is pretrained (``model.config.pretrained``),
            train them for a randomly initialised backbone (whose BN statistics mean nothing yet).
        freeze_stages: the first N of the backbone's five stages (strides 2..32) get no gradient and
            keep their BatchNorm statistics; autograd then skips their backward pass. ``None`` = 4
            for a pretrained backbone, 0 for a randomly initialised one.
        backbone_lr_mult: learning-rate multiplier of the trained backbone parameters.
        channels_last: run the model and its inputs in channels-last memory format (faster
            convolutions on CPU); the model is given back in the default format.
        cache_images: decode and downscale every pair to ``max_side`` once, before the first epoch,
            and keep them in memory as uint8 (else every epoch decodes again).
        time_budget_s: wall-time limit of the run. With the cosine schedule training runs until
            the budget (``epochs`` is ignored); with the step schedule it stops after the step that
            exceeds it. None = no limit.
        min_steps: train at least this many optimiser steps: a small set gets more epochs (the
            schedule stretched in proportion), so a handful of images still trains a network
            instead of leaving it at its initial all-background guess.
        num_threads: ``torch.set_num_threads`` for the run (None = leave as is).
        num_workers: DataLoader worker processes (0 = load in the training process).
        device: ``"cpu"``, ``"cuda"``, ... (None = GPU if available else CPU).
    """

    epochs: int = 10
    batch_size: int = 8
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    step_epochs: int = 5
    warmup_fraction: float = 0.0
    crop_size: int = 256
    scale_range: tuple[float, float] = (0.75, 1.25)
    seed: int = 0
    max_side: int | None = 320
    num_threads: int | None = None
    freeze_bn: bool | None = None
    freeze_stages: int | None = None
    backbone_lr_mult: float = 0.1
    channels_last: bool = True
    cache_images: bool = True
    time_budget_s: float | None = None
    min_steps: int = 0
    num_workers: int = 0
    device: str | None = None

    def __post_init__(self) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"TrainConfig.{name} must be an int >= {minimum}, got {v!r}")

        for name in ("epochs", "batch_size", "step_epochs"):
            positive_int(name)
        positive_int("crop_size", 16)
        positive_int("num_workers", 0)
        positive_int("min_steps", 0)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        for name in ("lr", "backbone_lr_mult", "weight_decay", "momentum"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"TrainConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.freeze_stages is not None:
            positive_int("freeze_stages", 0)
            if self.freeze_stages > 5:
                raise ValueError(
                    f"TrainConfig.freeze_stages must be 0..5 (the backbone's stages), got {self.freeze_stages}"
                )
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"TrainConfig.scale_range must be (lo, hi) with 0 < lo <= hi, got {self.scale_range}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"TrainConfig.max_side must be >= 16 or None, got {self.max_side}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"TrainConfig.time_budget_s must be > 0 or None, got {self.time_budget_s}")
        object.__setattr__(self, "scale_range", (float(lo), float(hi)))

    @property
    def until_budget(self) -> bool:
        """True when the run trains until ``time_budget_s`` instead of for ``epochs``."""
        return self.time_budget_s is not None and self.schedule == "cosine"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        check_known_fields(cls, data)
        data = dict(data)
        if "scale_range" in data:
            data["scale_range"] = tuple(data["scale_range"])
        return cls(**data)

    @classmethod
    def legacy(cls, **fields: Any) -> TrainConfig:
        """The recipe before issue 10 (:data:`LEGACY_RECIPE`), with ``fields`` on top."""
        return cls.from_dict({**LEGACY_RECIPE, **fields})

    @classmethod
    def from_saved(cls, data: Mapping[str, Any]) -> TrainConfig:
        """A config read back from a checkpoint or a run record: one written before the recipe had
        an ``optimizer`` field was trained with :data:`LEGACY_RECIPE` for the fields it lacks."""
        base = {} if "optimizer" in data else LEGACY_RECIPE
        return cls.from_dict({**base, **data})
