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

``gf_mode="fast"`` (Wu et al.'s fast trainable guided filter) replaces the last two lines::

    guide = ImageGuide(x)                                          (N, G, H, W), in 0..1
    a, b  = coefficients(down4(guide), up(coarse) at stride 4)     (r, eps at stride 4)
    logits = up(mean(a)) . guide + up(mean(b))                     (N, K, H, W)

and HGL's output joins the decoder (the guidance is the image's, so HGL is a feature there).
``decoder_channels`` (default ``A``) sets the width of the stride-4 decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.filters.guided import FastGuidedFilter, GuidedFilter
from core.network.backbones import build_backbone
from core.network.config import GFNConfig
from core.network.modules import (
    ASPP,
    BoundaryGuided,
    GuidanceHead,
    HighGuidedLow,
    ImageGuide,
    conv_bn_relu,
    resize,
    sep_conv,
)


class GFN(nn.Module):
    """Guided Filter Network. ``forward(x (N, 3, H, W) normalised float) -> logits (N, K, H, W)``."""

    def __init__(self, config: GFNConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        A, L = c.aspp_channels, c.low_channels
        D = c.decoder_channels or A
        fast = c.use_gf and c.gf_mode == "fast"
        self.hgl_in_decoder = c.use_hgl and (not c.use_gf or fast)
        self.backbone = build_backbone(c.backbone, pretrained=c.pretrained, output_stride=c.output_stride)
        rates = (6, 12, 18) if c.output_stride == 16 else (12, 24, 36)
        self.aspp = ASPP(self.backbone.high_channels, A, rates)
        self.bg = BoundaryGuided(A, L) if c.use_bg else None
        self.hgl = HighGuidedLow(A, L) if c.use_hgl else None
        n_low = (L if c.use_bg else 0) + (L if self.hgl_in_decoder else 0)
        needs_low = n_low or (c.use_gf and not fast)
        self.low_proj = conv_bn_relu(self.backbone.low_channels, L, 1) if needs_low else None
        self.decoder = nn.Sequential(sep_conv(A + n_low, D), sep_conv(D, D)) if n_low else None
        self.classifier = nn.Conv2d(D if n_low else A, c.num_classes, 1)
        self.guide: nn.Module | None = None
        self.gf: GuidedFilter | None = None
        if fast:
            self.guide, self.gf = ImageGuide(c.guide_channels), FastGuidedFilter(c.gf_radius, c.gf_eps)
        elif c.use_gf:
            self.guide, self.gf = GuidanceHead(L, c.guide_channels), GuidedFilter(c.gf_radius, c.gf_eps)
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

        Returns ``coarse`` logits ``(N, K, h, w)`` (stride 4, or stride os without a decoder)
        and the guidance in 0..1: ``(N, G, H/4, W/4)``, ``(N, G, H, W)`` with ``gf_mode="fast"``,
        or ``None`` when GF is off.
        """
        low, high = self.backbone(x)
        hf = self.aspp(high)
        lf = self.low_proj(low) if self.low_proj is not None else None
        if self.decoder is not None and lf is not None:  # (a decoder implies the low-level projection)
            parts = [resize(hf, lf.shape[-2:])]
            if self.bg is not None:
                parts.append(self.bg(hf, lf))
            if self.hgl is not None and self.hgl_in_decoder:
                parts.append(self.hgl(hf, lf))
            coarse = self.classifier(self.decoder(torch.cat(parts, dim=1)))
        else:
            coarse = self.classifier(hf)
        guide = None
        if isinstance(self.guide, ImageGuide):
            guide = self.guide(x)
        elif self.guide is not None:  # (built with the GF)
            guide = self.guide(self.hgl(hf, lf) if self.hgl is not None and not self.hgl_in_decoder else lf)
        return coarse, guide

    def refine(self, coarse: torch.Tensor, guide: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        """Guided-filter the coarse logits (if GF is on) and upsample to ``size``: ``(N, K, *size)``.

        With ``gf_mode="fast"`` the coefficients are computed at stride 4 (``ceil(H/4) x ceil(W/4)``)
        from the guidance averaged over 4x4 blocks, and applied to the guidance resized to ``size``.
        """
        if guide is None or self.gf is None:
            return resize(coarse, size)
        if isinstance(self.gf, FastGuidedFilter):
            hr = resize(guide, size)
            lr = F.avg_pool2d(hr, 4, ceil_mode=True, count_include_pad=False)  # 4x4 means, ceil(H/4) x ceil(W/4)
            return self.gf(lr, resize(coarse, lr.shape[-2:]), hr)
        return resize(self.gf(guide, resize(coarse, guide.shape[-2:])), size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"GFN expects (N, 3, H, W) input, got shape {tuple(x.shape)}")
        coarse, guide = self.features(x)
        return self.refine(coarse, guide, (x.shape[2], x.shape[3]))
