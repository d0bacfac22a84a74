"""One place that turns a :class:`GFNConfig` into a model."""

from __future__ import annotations

import logging

from torch import nn

from core.network.config import BACKBONES, GFNConfig
from core.network.gfn import GFN

log = logging.getLogger(__name__)

__all__ = ["BACKBONES", "build_model"]


def build_model(config: GFNConfig) -> nn.Module:
    """Build the GFN described by ``config``.

    ``forward``: ``(N, 3, H, W)`` float, ImageNet-normalised (see :mod:`core.network.preprocess`)
    -> logits ``(N, K, H, W)`` at the input resolution, for any ``H, W``.
    """
    if not isinstance(config, GFNConfig):
        raise TypeError(f"config must be a GFNConfig, got {type(config).__name__}")
    model = GFN(config)
    log.debug("built GFN %s modules=%s classes=%d", config.backbone, config.modules(), config.num_classes)
    return model
