"""The Guided Filter Network (paper 001, section III, Fig. 1), with switchable modules.

Data flow (``A`` = ASPP width, ``L`` = low-level width, ``K`` = classes, ``os`` = output stride)::

    x (N,3,H,W) -> backbone -> low (stride 4), high (stride os)
    hf = ASPP(high)                          (N, A, H/os, W/os)
    lf = proj(low)                           (N, L, H/4, W/4)
    no BG and no HGL-without-GF:  coarse = cls(hf)                 (DeepLab-style, stride os)
    otherwise (decoder at stride 4):
        parts = [up(hf)] + [BG(hf, lf)]  if use_bg     (lf + lf * up(D(hf)), eq. 1)
                         + [HGL(hf, lf)] if use_hgl and not use_gf
        coarse = cls(sepconv(cat(parts)))                          (stride 4)
    use_gf: guide = G(HGL(hf, lf) if use_hgl else lf)             (N, 3, H/4, W/4), in 0..1
            coarse = guided_filter(guide, up(coarse), r, eps)      (eqs. 2-3)
    logits = up(coarse) to (H, W)

With HGL on and GF on, HGL is the guidance (the paper's use); with GF off, HGL's output joins the
decoder as cleaner low-level features so that the "+HGL" ablation row is meaningful on its own.
"""

from __future__ import annotations

import torch
from torch import nn

from core.filters.guided import GuidedFilter
from core.network.backbones import build_backbone
from core.network.config import GFNConfig
from core.network.modules import ASPP, BoundaryGuided, GuidanceHead, HighGuidedLow, conv_bn_relu, resize, sep_conv


class GFN(nn.Module):
    """Guided Filter Network. ``forward(x (N, 3, H, W) normalised float) -> logits (N, K, H, W)``."""

    def __init__(self, config: GFNConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        A, L = c.aspp_channels, c.low_channels
        self.backbone = build_backbone(c.backbone, pretrained=c.pretrained, output_stride=c.output_stride)
        rates = (6, 12, 18) if c.output_stride == 16 else (12, 24, 36)
        self.aspp = ASPP(self.backbone.high_channels, A, rates)
        self.bg = BoundaryGuided(A, L) if c.use_bg else None
        self.hgl = HighGuidedLow(A, L) if c.use_hgl else None
        n_low = (L if c.use_bg else 0) + (L if c.use_hgl and not c.use_gf else 0)
        self.low_proj = conv_bn_relu(self.backbone.low_channels, L, 1) if (n_low or c.use_gf) else None
        self.decoder = nn.Sequential(sep_conv(A + n_low, A), sep_conv(A, A)) if n_low else None
        self.classifier = nn.Conv2d(A, c.num_classes, 1)
        self.guide = GuidanceHead(L, c.guide_channels) if c.use_gf else None
        self.gf = GuidedFilter(c.gf_radius, c.gf_eps) if c.use_gf else None
        self._init_head()

    def _init_head(self) -> None:
        for name, m in self.named_modules():
            if name.startswith("backbone"):
                continue
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.classifier.weight, std=0.01)  # small initial logits: loss starts near log K

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Everything before the guided filter.

        Returns ``coarse`` logits ``(N, K, h, w)`` (stride 4, or stride os for the plain baseline)
        and the guidance ``(N, G, H/4, W/4)`` in 0..1, or ``None`` when GF is off.
        """
        low, high = self.backbone(x)
        hf = self.aspp(high)
        lf = self.low_proj(low) if self.low_proj is not None else None
        if self.decoder is not None and lf is not None:  # (a decoder implies the low-level projection)
            parts = [resize(hf, lf.shape[-2:])]
            if self.bg is not None:
                parts.append(self.bg(hf, lf))
            if self.hgl is not None and self.gf is None:
                parts.append(self.hgl(hf, lf))
            coarse = self.classifier(self.decoder(torch.cat(parts, dim=1)))
        else:
            coarse = self.classifier(hf)
        guide = None
        if self.gf is not None and self.guide is not None:  # (built together)
            guide = self.guide(self.hgl(hf, lf) if self.hgl is not None else lf)
        return coarse, guide

    def refine(self, coarse: torch.Tensor, guide: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        """Guided-filter the coarse logits (if GF is on) and upsample to ``size``: ``(N, K, *size)``."""
        if guide is not None and self.gf is not None:
            coarse = self.gf(guide, resize(coarse, guide.shape[-2:]))
        return resize(coarse, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"GFN expects (N, 3, H, W) input, got shape {tuple(x.shape)}")
        coarse, guide = self.features(x)
        return self.refine(coarse, guide, (x.shape[2], x.shape[3]))
