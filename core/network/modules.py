"""Building blocks of the GFN: light ASPP, boundary extractor (eq. 1), BG and HGL modules (eq. 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 1, dilation: int = 1) -> nn.Sequential:
    """``k x k`` conv (no bias) + BatchNorm + ReLU, 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=dilation * (k // 2), dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def sep_conv(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise-separable 3x3 conv: depthwise (dilated) + BN + ReLU, pointwise + BN + ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        conv_bn_relu(cin, cout, 1),
    )


def resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize of ``(N, C, h, w)`` to ``size``; identity when already that size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling with depthwise-separable atrous branches (CPU-light).

    ``(N, cin, h, w) -> (N, cout, h, w)``: 1x1 conv, three atrous separable convs at ``rates``,
    image pooling; concatenated and projected by a 1x1 conv.
    """

    def __init__(self, cin: int, cout: int, rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout, 1)] + [sep_conv(cin, cout, d) for d in rates])
        # No BatchNorm on the 1x1 pooled branch: it must work with batch size 1 in training.
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn_relu(cout * 5, cout, 1), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


def boundary(x: torch.Tensor) -> torch.Tensor:
    """Boundary extractor, paper 001 eq. 1: ``D(X) = maxpool3x3(X) + maxpool3x3(-X)``
    (= max - min over each 3x3 neighbourhood, stride 1, pad 1). ``(N, C, h, w) -> (N, C, h, w)``, >= 0."""
    return F.max_pool2d(x, 3, stride=1, padding=1) + F.max_pool2d(-x, 3, stride=1, padding=1)


class BoundaryGuided(nn.Module):
    """BG module: boundaries of the high-level features modulate the low-level features.

    ``forward(high (N, A, h, w), low (N, L, H4, W4)) -> (N, L, H4, W4)``:
    ``low + low * up(D(proj(high)))`` (the residual keeps the low-level path trainable where the
    boundary map is ~0).
    """

    def __init__(self, high_channels: int, low_channels: int) -> None:
        super().__init__()
        self.proj = conv_bn_relu(high_channels, low_channels, 1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        d = resize(boundary(self.proj(high)), low.shape[-2:])
        return low + low * d


class HighGuidedLow(nn.Module):
    """HGL module, paper 001 eq. 4: ``HGL(X) = HF(X) * LF(X)`` element-wise.

    ``forward(high (N, A, h, w), low (N, L, H4, W4)) -> (N, L, H4, W4)``; ``HF`` is a 1x1
    projection of the high-level features to ``L`` channels (sigmoid-gated, so the product is a
    semantic gating of the low-level features), upsampled to stride 4.
    """

    def __init__(self, high_channels: int, low_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(high_channels, low_channels, 1)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return resize(torch.sigmoid(self.proj(high)), low.shape[-2:]) * low


class GuidanceHead(nn.Module):
    """Reduce features to a few-channel guidance map in 0..1 for the guided filter.

    ``(N, L, H4, W4) -> (N, G, H4, W4)``.
    """

    def __init__(self, cin: int, guide_channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(conv_bn_relu(cin, hidden, 1), nn.Conv2d(hidden, guide_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))


class ImageGuide(nn.Module):
    """Guidance computed from the image itself, per pixel (Wu et al.'s guided map, CVPR 2018).

    ``(N, 3, H, W)`` normalised image -> ``(N, G, H, W)`` in 0..1: two 1x1 convolutions, so it costs
    a few operations per pixel at full resolution and keeps every image edge where it is.
    """

    def __init__(self, guide_channels: int, hidden: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, guide_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))
