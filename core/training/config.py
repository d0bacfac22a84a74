"""``TrainConfig``: the training recipe (frozen, serialisable)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from core.config import check_known_fields


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Training recipe; defaults follow paper 001 (batch 8, SGD lr 0.007 /10 every 5 epochs,
    momentum 0.9, weight decay 2e-4), adapted to CPU (crop 321, ``max_side`` 512, frozen backbone BN).

    Attributes:
        epochs: passes over the pairs.
        step_epochs: divide the learning rate by 10 every ``step_epochs`` epochs.
        crop_size: training crop side; smaller images are padded (padding ignored in the loss).
        scale_range: random rescale factor range applied after ``max_side``.
        max_side: downscale images whose longer side exceeds this before augmentation (None = never).
        freeze_bn: keep the backbone's BatchNorm statistics fixed (eval-mode BN), as batches are small
            on CPU. ``None`` (default) = freeze when the backbone is pretrained (``model.config.pretrained``),
            train them for a randomly initialised backbone (whose BN statistics mean nothing yet).
        backbone_lr_mult: learning-rate multiplier of the (pretrained) backbone parameters; 1.0 (the
            paper's single rate) beat 0.1 with a 10x head rate on a short CPU budget
            (``bench/results/gfn_lr_mult.txt``).
        time_budget_s: stop after the step that exceeds this wall time (None = no limit).
        min_steps: train at least this many optimiser steps: a small set gets more epochs (the
            step decay stretched in proportion), so a handful of images still trains a network
            instead of leaving it at its initial all-background guess.
        num_threads: ``torch.set_num_threads`` for the run (None = leave as is).
        num_workers: DataLoader worker processes (0 = load in the training process).
        device: ``"cpu"``, ``"cuda"``, ... (None = GPU if available else CPU).
    """

    epochs: int = 10
    batch_size: int = 8
    lr: float = 0.007
    momentum: float = 0.9
    weight_decay: float = 2e-4
    step_epochs: int = 5
    crop_size: int = 321
    scale_range: tuple[float, float] = (0.75, 1.25)
    seed: int = 0
    max_side: int | None = 512
    num_threads: int | None = None
    freeze_bn: bool | None = None
    backbone_lr_mult: float = 1.0
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
        for name in ("lr", "backbone_lr_mult"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        lo, hi = self.scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"TrainConfig.scale_range must be (lo, hi) with 0 < lo <= hi, got {self.scale_range}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"TrainConfig.max_side must be >= 16 or None, got {self.max_side}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"TrainConfig.time_budget_s must be > 0 or None, got {self.time_budget_s}")
        object.__setattr__(self, "scale_range", (float(lo), float(hi)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        check_known_fields(cls, data)
        data = dict(data)
        if "scale_range" in data:
            data["scale_range"] = tuple(data["scale_range"])
        return cls(**data)
