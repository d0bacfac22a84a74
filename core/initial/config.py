"""Settings of the initial (round-0) masks: one frozen config shared by every route
(the routes themselves: ``core.initial.routes.ROUTES``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.config import check_known_fields
from core.postprocess.crf import CRFParams, lift_legacy_crf

COARSE_MAPS = ("auto", "cam", "topk", "activation", "centre")
"""Sources of the coarse foreground map that seeds GrabCut (see ``InitConfig.coarse``)."""

BOX_MODES = ("map", "centre", "union")
"""GrabCut's box (see ``InitConfig.box_mode``)."""

CAM_SOURCES = ("auto", "imagenet", "trained")
OTSU_FEATURES = ("border_distance", "gray")


@dataclass(frozen=True, kw_only=True)
class InitConfig:
    """How round-0 masks are made. Every field has a default measured on the bench data.

    Sizes are in pixels of the working image (longest side ``work_size``); thresholds on maps
    are fractions of the map's maximum (maps are normalised to [0, 1]).
    """

    # --- working resolution and speed
    work_size: int = 320
    """Longest side at which images are processed (never upscaled); results go back to full size."""
    cam_size: int = 320
    """Longest side of the CNN input for CAMs (small images are upscaled to it)."""
    num_threads: int | None = None
    """torch threads during the call (restored afterwards); ``None`` leaves torch's setting."""
    keep_probs: bool = True
    """Return per-image probabilities ``(K, H, W)`` (memory: 4*K bytes per pixel)."""
    seed: int = 0
    workers: int | None = 1
    """Processes for the per-image work of the map routes (GrabCut, dense CRF: one core each), with
    ``core.refine.workers.map_ordered``; ``None`` = one per core. A run sets it from ``post.workers``.
    The masks do not depend on it; coarse maps and anything trained stay in the calling process."""

    # --- class activation maps
    cam_source: str = "auto"
    """``imagenet`` (ImageNet MobileNetV2 classifier, user class mapped to ImageNet classes),
    ``trained`` (a GAP classifier trained on the image-level labels), ``auto`` (trained when the
    dataset has several foreground classes, else imagenet)."""
    cam_scales: tuple[float, ...] = (1.0,)
    cam_flip: bool = True
    cam_output_stride: int = 16
    """16 dilates the last MobileNetV2 stages (finer CAMs), 32 is the plain network."""
    cam_top_k: int = 5
    """Class-agnostic activation: CAMs of the top-k ImageNet classes predicted for the image."""
    imagenet_map: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Extra or overriding ``{class name: ImageNet indices}``; an empty tuple = class-agnostic."""
    bg_power: float = 1.0
    """Background score of a CAM: ``(1 - cam) ** bg_power`` (larger = more foreground)."""
    classifier_epochs: int = 25
    classifier_lr: float = 1e-3
    classifier_batch_size: int = 16

    # --- dense CRF (pydensecrf) on CAMs
    crf: CRFParams = field(default_factory=CRFParams)
    """The same ``CRFParams`` as the rounds' post-processing (old configs' ``crf_<name>`` keys still load)."""

    # --- GrabCut from a coarse map (route grabcut, auto)
    coarse: str = "auto"
    """Coarse map of routes grabcut/auto: ``cam`` (class CAM: ImageNet classes mapped from the
    class name, or the trained classifier), ``topk`` (class-agnostic: CAMs of the image's top-k
    ImageNet classes), ``activation`` (mean of MobileNetV2's last features), ``centre`` (a
    centred box, no network), ``auto`` (trained-classifier CAM with several classes, else
    ``topk``, which beat the mapped class CAM on the horse bench). Route cam always uses ``cam``."""
    grabcut_iters: int = 5
    box_threshold: float = 0.25
    """Coarse-map level whose bounding box (of the main components) is GrabCut's box."""
    box_margin: float = 0.05
    """Margin added around the box, as a fraction of the image side."""
    centre_box: float = 0.8
    """Side of the centred box (fraction of the image side) for ``coarse="centre"``."""
    box_mode: str = "centre"
    """GrabCut's box: ``map`` (bounding box of the thresholded coarse map, plus margin),
    ``centre`` (the centred box of side ``centre_box``, seeded inside by the map), ``union``
    (both united). Outside the box is sure background."""
    prob_fg_threshold: float = 0.2
    """Inside the box, coarse map >= this is probable foreground, below is probable background."""
    sure_fg_threshold: float = 1.1
    """Coarse map >= this is sure foreground (> 1 disables it)."""
    fuse_weight: float = 0.6
    """Route auto: weight of the GrabCut mask against the CRF'd CAM in the fused probability."""
    fuse_crf: bool = True
    """Route auto: run the dense CRF once more on the fused probability."""

    # --- simple-to-complex (route otsu)
    simple_stems: tuple[str, ...] | None = None
    """User's list of simple-background images; ``None`` picks them automatically."""
    simple_border_std: float = 5.0
    """Maximum colour spread (mean Lab std) of the image border for a simple image."""
    simple_separability: float = 0.8
    """Minimum Otsu between-class / total variance ratio for a simple image."""
    simple_min: int = 4
    """At least this many simple images are used (the most simple ones if too few pass)."""
    simple_max_fraction: float = 1.0
    """At most this fraction of the dataset is treated as simple."""
    otsu_feature: str = "border_distance"
    """``border_distance`` (Lab distance to the border's median colour) or ``gray``."""
    ignore_band: int = 2
    """Pixels either side of a pseudo-label boundary marked ignore (255) for GFN training."""

    # --- GFN training for otsu / transfer (overrides of GFNConfig / TrainConfig fields)
    gfn: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    predict_flip: bool = True
    min_train_samples: int = 96
    """Pseudo-labelled sets smaller than this are repeated up to it, so that a handful of simple
    images still gives the GFN enough iterations per epoch."""

    # --- transfer from torchvision's VOC-pretrained models
    voc_model: str = "deeplabv3_mobilenet_v3_large"
    voc_weights: str | None = "DEFAULT"
    """torchvision weights name (downloaded by torchvision); ``None`` = random init (tests)."""
    voc_map: Mapping[str, str] = field(default_factory=dict)
    """Extra or overriding ``{class name: VOC class name}``."""

    def __post_init__(self) -> None:
        if self.work_size < 16 or self.cam_size < 32:
            raise ValueError(f"work_size must be >= 16 and cam_size >= 32, got {self.work_size}, {self.cam_size}")
        for name, value, allowed in (
            ("cam_source", self.cam_source, CAM_SOURCES),
            ("coarse", self.coarse, COARSE_MAPS),
            ("otsu_feature", self.otsu_feature, OTSU_FEATURES),
            ("box_mode", self.box_mode, BOX_MODES),
        ):
            if value not in allowed:
                raise ValueError(f"InitConfig.{name} must be one of {list(allowed)}, got {value!r}")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ValueError(f"InitConfig.workers must be an integer >= 1 or None (one per core), got {self.workers!r}")
        if self.cam_output_stride not in (16, 32):
            raise ValueError(f"InitConfig.cam_output_stride must be 16 or 32, got {self.cam_output_stride}")
        if not self.cam_scales or any(s <= 0 for s in self.cam_scales):
            raise ValueError(f"InitConfig.cam_scales must be positive numbers, got {self.cam_scales}")
        for name in (
            "box_threshold",
            "prob_fg_threshold",
            "fuse_weight",
            "box_margin",
            "centre_box",
            "simple_max_fraction",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"InitConfig.{name} must lie in [0, 1], got {v}")
        if self.simple_stems is not None and isinstance(self.simple_stems, str):
            raise ValueError("InitConfig.simple_stems must be a list of stems, not one string")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InitConfig:
        """Build from a plain mapping (e.g. JSON); unknown keys raise listing the known ones."""
        kw = lift_legacy_crf(data)
        check_known_fields(cls, kw)
        if isinstance(kw.get("crf"), Mapping):
            kw["crf"] = CRFParams.from_dict(kw["crf"])
        for key in ("cam_scales", "simple_stems"):
            if kw.get(key) is not None:
                kw[key] = tuple(kw[key])
        if "imagenet_map" in kw:
            kw["imagenet_map"] = {str(k): tuple(int(i) for i in v) for k, v in kw["imagenet_map"].items()}
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
