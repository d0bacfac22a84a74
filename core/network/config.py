"""``GFNConfig``: everything needed to rebuild a Guided Filter Network (frozen, serialisable)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.config import check_known_fields

BACKBONES: tuple[str, ...] = ("mobilenet_v2", "resnet50", "resnet101")
"""Backbone names accepted by :func:`core.network.factory.build_model`."""

OUTPUT_STRIDES: tuple[int, ...] = (8, 16)

GF_MODES: tuple[str, ...] = ("stride4", "fast")
"""Where the guided filter works: ``"stride4"`` filters the coarse logits at stride 4 guided by
features (HGL) and upsamples the result bilinearly (the paper's use); ``"fast"`` is the fast
end-to-end trainable guided filter of Wu et al. (CVPR 2018): the coefficients ``a, b`` are computed
at stride 4, upsampled bilinearly and applied to a full-resolution guidance computed from the image."""

MODULES: tuple[str, ...] = ("bg", "hgl", "gf")
"""The paper's switchable modules: Boundary-Guided, High-level-Guided-Low-level, Guided Filter."""

ABLATIONS: dict[str, dict[str, bool]] = {
    "baseline": dict(use_bg=False, use_hgl=False, use_gf=False),
    "gf": dict(use_bg=False, use_hgl=False, use_gf=True),
    "hgl": dict(use_bg=False, use_hgl=True, use_gf=False),
    "bg": dict(use_bg=True, use_hgl=False, use_gf=False),
    "gf+hgl": dict(use_bg=False, use_hgl=True, use_gf=True),
    "all": dict(use_bg=True, use_hgl=True, use_gf=True),
}
"""Named module sets (the paper's ablation rows plus single-module rows)."""

LEGACY_FIELDS: dict[str, Any] = dict(gf_mode="stride4", decoder_channels=None)
"""Fields added after the first checkpoints, with the values that rebuild the architecture those
checkpoints were trained with. A mapping holding exactly the fields that existed before them (a
complete ``to_dict()`` of that time, as every old checkpoint stores) is read with these values."""


@dataclass(frozen=True, kw_only=True)
class GFNConfig:
    """Architecture of a GFN. Defaults: CPU-friendly MobileNetV2, output stride 16, all modules on.

    Attributes:
        backbone: one of :data:`BACKBONES`.
        pretrained: initialise the backbone with torchvision's ImageNet weights (offline from the
            torch hub cache when present); ``False`` = random init.
        output_stride: 8 or 16, stride of the high-level features (dilated backbone).
        use_bg / use_hgl / use_gf: the Boundary-Guided, High-level-Guided-Low-level and Guided
            Filter modules (all off = a plain DeepLab-style ASPP baseline).
        gf_radius, gf_eps: guided-filter window radius (in stride-4 feature pixels) and
            regularisation (the guidance map lies in 0..1).
        num_classes: K, including background.
        aspp_channels: width of ASPP and decoder; low_channels: width of the low-level projection;
        guide_channels: channels of the guidance map fed to the guided filter (1 = gray formula,
            3 = colour formula of He et al.).
        gf_mode: one of :data:`GF_MODES`. With ``"fast"`` the guidance is computed from the image
            (a per-pixel 1x1 network) and HGL's output joins the decoder.
        decoder_channels: width of the stride-4 decoder and its classifier; ``None`` = ``aspp_channels``.
    """

    backbone: str = "mobilenet_v2"
    pretrained: bool = True
    output_stride: int = 16
    use_bg: bool = True
    use_hgl: bool = True
    use_gf: bool = True
    gf_radius: int = 2
    gf_eps: float = 1e-2
    num_classes: int = 2
    aspp_channels: int = 128
    low_channels: int = 48
    guide_channels: int = 3
    gf_mode: str = "stride4"
    decoder_channels: int | None = None

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; valid backbones: {list(BACKBONES)}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {list(OUTPUT_STRIDES)}, got {self.output_stride}")
        if isinstance(self.gf_radius, bool) or not isinstance(self.gf_radius, int) or self.gf_radius < 1:
            raise ValueError(f"gf_radius must be an int >= 1, got {self.gf_radius!r}")
        if not isinstance(self.gf_eps, (int, float)) or not self.gf_eps > 0:
            raise ValueError(f"gf_eps must be > 0, got {self.gf_eps!r}")
        for name in ("num_classes", "aspp_channels", "low_channels", "guide_channels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (2 if name == "num_classes" else 1):
                raise ValueError(f"{name} must be a positive int (num_classes >= 2), got {v!r}")
        if self.gf_mode not in GF_MODES:
            raise ValueError(f"gf_mode must be one of {list(GF_MODES)}, got {self.gf_mode!r}")
        d = self.decoder_channels
        if d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1):
            raise ValueError(f"decoder_channels must be a positive int or None, got {d!r}")
        if self.num_classes > 255:
            raise ValueError(f"num_classes must be <= 255 (255 is the ignore index), got {self.num_classes}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GFNConfig:
        """Build from a mapping; unknown keys are refused with the list of known ones.

        A mapping with exactly the fields older than :data:`LEGACY_FIELDS` (an old checkpoint's
        config) gets the legacy values, so it rebuilds the architecture it was trained with.
        """
        check_known_fields(cls, data)
        data = dict(data)
        old = {f.name for f in dataclasses.fields(cls)} - set(LEGACY_FIELDS)
        if set(data) == old:
            data.update(LEGACY_FIELDS)
        return cls(**data)

    @classmethod
    def for_ablation(cls, name: str, **fields: Any) -> GFNConfig:
        """Config with the module set ``name`` (one of :data:`ABLATIONS`) plus other ``fields``."""
        if name not in ABLATIONS:
            raise ValueError(f"unknown module set {name!r}; valid: {list(ABLATIONS)}")
        return cls.from_dict({**fields, **ABLATIONS[name]})

    def modules(self) -> tuple[str, ...]:
        """Names of the enabled modules, e.g. ``("bg", "hgl", "gf")``."""
        return tuple(m for m in MODULES if getattr(self, f"use_{m}"))
