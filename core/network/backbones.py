"""Dilated ImageNet backbones returning low-level (stride 4) and high-level (stride 8/16) features."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from core.network.config import BACKBONES, OUTPUT_STRIDES

log = logging.getLogger(__name__)

# torchvision weight enum member used for each backbone, and the file it keeps in the hub cache.
WEIGHTS: dict[str, tuple[str, str]] = {
    "mobilenet_v2": ("MobileNet_V2_Weights.IMAGENET1K_V1", "mobilenet_v2-b0353104.pth"),
    "resnet50": ("ResNet50_Weights.IMAGENET1K_V1", "resnet50-0676ba61.pth"),
    "resnet101": ("ResNet101_Weights.IMAGENET1K_V1", "resnet101-63fe2227.pth"),
}


def weights_file(name: str) -> Path:
    """Where torchvision caches the ImageNet weights of backbone ``name``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS[name][1]


def _weights(name: str, pretrained: bool):
    if not pretrained:
        return None
    import torchvision.models as tvm

    enum_name, member = WEIGHTS[name][0].split(".")
    return getattr(getattr(tvm, enum_name), member)


def _build(name: str, fn, pretrained: bool, **kwargs) -> nn.Module:
    try:
        return fn(weights=_weights(name, pretrained), **kwargs)
    except Exception as exc:  # download failure offline, corrupt cache file, ...
        if not pretrained:
            raise
        raise FileNotFoundError(
            f"ImageNet weights for {name} are not available: expected {weights_file(name)} "
            f"(torch hub cache) or network access ({exc.__class__.__name__}: {exc}). "
            "Put the torchvision file there, or use pretrained=False (--no-pretrained)."
        ) from exc


def _dilate(module: nn.Module, dilation: int) -> None:
    """Turn stride-2 convs of ``module`` into stride 1 and dilate its 3x3 convs (DeepLab trick)."""
    for m in module.modules():
        if not isinstance(m, nn.Conv2d):
            continue
        if m.stride == (2, 2):
            m.stride = (1, 1)
            d = max(dilation // 2, 1)
        else:
            d = dilation
        if m.kernel_size == (3, 3):
            m.dilation, m.padding = (d, d), (d, d)


class MobileNetV2Backbone(nn.Module):
    """torchvision MobileNetV2 ``features[0:18]`` (the 1280-channel head is dropped).

    ``forward(x (N, 3, H, W)) -> (low (N, 24, H/4, W/4), high (N, 320, H/os, W/os))``.
    """

    low_channels = 24
    high_channels = 320

    def __init__(self, *, pretrained: bool, output_stride: int) -> None:
        super().__init__()
        import torchvision.models as tvm

        feats = cast(nn.Sequential, _build("mobilenet_v2", tvm.mobilenet_v2, pretrained).features)
        if output_stride == 8:
            _dilate(feats[7:14], 2)
            _dilate(feats[14:18], 4)
        else:
            _dilate(feats[14:18], 2)
        # slices keep torchvision's module names (features.4 ...), so checkpoints keep their keys
        self.low = cast(nn.Sequential, feats[:4])
        self.high = cast(nn.Sequential, feats[4:18])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.low(x)
        return low, self.high(low)

    def stages(self) -> list[nn.Module]:
        """The five stages in input order, one per stride (2, 4, 8, 16, 32 before dilation):
        ``features[0:2]``, ``[2:4]``, ``[4:7]``, ``[7:14]``, ``[14:18]``."""
        return [self.low[0:2], self.low[2:4], self.high[0:3], self.high[3:10], self.high[10:14]]


class ResNetBackbone(nn.Module):
    """torchvision ResNet-50/101 with dilated layer3/layer4.

    ``forward(x) -> (low = layer1 (N, 256, H/4, W/4), high = layer4 (N, 2048, H/os, W/os))``.
    """

    low_channels = 256
    high_channels = 2048

    def __init__(self, name: str, *, pretrained: bool, output_stride: int) -> None:
        super().__init__()
        import torchvision.models as tvm

        net: Any = _build(
            name, getattr(tvm, name), pretrained, replace_stride_with_dilation=[False, output_stride == 8, True]
        )
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.stem(x))
        return low, self.layer4(self.layer3(self.layer2(low)))

    def stages(self) -> list[nn.Module]:
        """The five stages in input order: stem, ``layer1`` ... ``layer4``."""
        return [self.stem, self.layer1, self.layer2, self.layer3, self.layer4]


NUM_STAGES = 5
"""Every backbone has five stages (``stages()``), so ``freeze_stages`` means the same for all."""


def freeze_stages(backbone: MobileNetV2Backbone | ResNetBackbone, n: int) -> list[nn.Parameter]:
    """Stop gradients into the first ``n`` stages of ``backbone`` (``requires_grad=False``).

    Returns the parameters it froze, so the caller can give them back their gradients
    (``p.requires_grad_(True)``) when it is done. The stages' BatchNorm layers are left to the
    caller's train/eval switch (see ``core.training.trainer.set_train_mode``).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= NUM_STAGES:
        raise ValueError(f"freeze_stages must be an int in 0..{NUM_STAGES}, got {n!r}")
    frozen = [p for stage in backbone.stages()[:n] for p in stage.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def build_backbone(name: str, *, pretrained: bool, output_stride: int) -> MobileNetV2Backbone | ResNetBackbone:
    """Backbone ``name`` (one of :data:`BACKBONES`) with ``low_channels`` / ``high_channels`` attributes."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid backbones: {list(BACKBONES)}")
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {output_stride}")
    if name == "mobilenet_v2":
        return MobileNetV2Backbone(pretrained=pretrained, output_stride=output_stride)
    return ResNetBackbone(name, pretrained=pretrained, output_stride=output_stride)
