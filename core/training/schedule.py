"""The optimiser and learning-rate schedule of a :class:`TrainConfig`.

The cosine schedule is a function of the fraction of the run done, so the same recipe runs over a
number of steps (fraction = steps done / total steps) or over a time budget (fraction = seconds
elapsed / budget): a budget then ends at the bottom of the cosine, whatever the machine's speed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from core.training.config import TrainConfig

__all__ = ["build_optimizer", "cosine_factor", "lr_factor"]


def build_optimizer(config: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) or SGD with momentum and L2 decay over parameter ``groups``."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def cosine_factor(fraction: float, warmup: float = 0.0) -> float:
    """Multiplier of the peak lr at ``fraction`` (0..1) of the run: a linear rise over ``warmup``,
    then a half cosine from 1 down to 0 at ``fraction == 1`` (clamped outside 0..1)."""
    f = min(max(fraction, 0.0), 1.0)
    if f < warmup:
        return f / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (f - warmup) / (1.0 - warmup)))


def lr_factor(config: TrainConfig, fraction: float, epoch: int, step_epochs: int) -> float:
    """Multiplier of ``config.lr`` for the next step: ``cosine_factor(fraction)`` for the cosine
    schedule, ``0.1 ** (epoch // step_epochs)`` for the step schedule (``epoch`` counted from 0)."""
    if config.schedule == "cosine":
        return cosine_factor(fraction, config.warmup_fraction)
    return 0.1 ** (epoch // step_epochs)
