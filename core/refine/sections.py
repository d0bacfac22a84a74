"""The typed sections of a ``RunConfig``: ``init`` (round 0), ``network``, ``train``, ``post``
(prediction, fusion, post-processing), ``filters`` and ``stop``.

Each is a frozen keyword-only dataclass that refuses unknown names and bad values when it is built,
naming the dotted setting (``train.epoch``, ``post.fuse``), and holds the typed config objects of the
parts it feeds (``InitConfig``, ``PostprocessConfig``) or their fields (``GFNConfig``,
``TrainConfig``, with their defaults read from there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.initial.config import InitConfig
from core.initial.routes import ROUTE_NAMES
from core.io.working import DEFAULT_IMAGE_MAX_SIDE, check_max_side
from core.network.config import GFNConfig
from core.postprocess.refine import PostprocessConfig
from core.training.config import TrainConfig

POSTPROCESS_METHODS = ("none", "grabcut", "crf", "guided")
SELECT_BY = ("label_free", "gt")
CONSISTENCY = ("objectness", "background")
"""Category-consistency modes (``core.refine.filters.consistent_probs``)."""


def parse_chain(spec: str) -> tuple[str, ...]:
    """A post-processing chain: ``"crf+grabcut"`` -> ``("crf", "grabcut")``; ``ValueError`` naming an
    unknown step (``core.refine.postchain`` runs it)."""
    steps = tuple(p.strip() for p in str(spec).split("+"))
    bad = [p for p in steps if p not in POSTPROCESS_METHODS]
    if bad or not steps:
        raise ValueError(
            f"postprocess {spec!r} is unknown: unknown step(s) {bad}; use one of "
            f"{list(POSTPROCESS_METHODS)} or several joined by '+', e.g. 'crf+grabcut'"
        )
    return steps


# ---------------------------------------------------------------- value checks (dotted names)
def _int(name: str, v: Any, minimum: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")


def _bool(name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be true or false, got {v!r}")


def _fraction(name: str, v: Any, *, closed: bool = False) -> None:
    """``v`` in [0, 1) (``closed``: [0, 1])."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0):
        raise ValueError(f"{name} must lie in [0, 1{']' if closed else ')'}, got {v!r}")


def _choice(name: str, v: Any, choices: tuple[str, ...]) -> None:
    if v not in choices:
        raise ValueError(f"{name} {v!r} is unknown; choose one of {list(choices)}")


def _builds(where: str, build: Callable[[], Any]) -> None:
    """Run ``build`` (making the object a section feeds) and name ``where`` in its error."""
    try:
        build()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def _from_dict(cls: type, data: Any, where: str, nested: Mapping[str, Callable[[Mapping], Any]] = {}):
    """Section ``cls`` from a mapping: unknown keys refused as ``where.key``; ``nested`` builds the
    config objects a section holds from their mappings."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping of its settings, got {data!r}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = [f"{where}.{k}" for k in data if k not in known]
    if unknown:
        raise ValueError(f"unknown RunConfig setting(s) {unknown}; known {where} settings: {known}")
    kw = dict(data)
    for key, build in nested.items():
        if isinstance(kw.get(key), Mapping):
            try:
                kw[key] = build(kw[key])
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{where}.{key}: {exc}") from None
    return cls(**kw)


# ---------------------------------------------------------------- sections
@dataclass(frozen=True, kw_only=True)
class InitSection:
    """Round 0: initial masks from image-level labels (``core.initial``)."""

    route: str = "auto"
    """Initial-mask route: one of ``core.initial.routes.ROUTE_NAMES``."""
    postprocess: bool = True
    """Run the ``post.chain`` on round 0 too when its masks come from a network (routes ``transfer`` and
    ``otsu``): round 0 of the transfer network on weizmann_horse went from 0.752 to 0.847 mIoU with
    ``crf+grabcut``. The GrabCut-based routes' masks are kept as they are."""
    options: InitConfig = field(default_factory=InitConfig)
    """The routes' settings. Their ``seed`` and ``num_threads`` are the run's (leave them unset here)."""
    source_model: str | None = None
    """A trained model (a checkpoint written by ``train``, or an earlier transfer run's
    ``round_00/source_model.pt``) that the ``transfer`` route labels with instead of training a
    network on a labelled source set: a team trains its source once and labels many sets from it."""

    RUN_WIDE = ("seed", "num_threads", "workers")
    """Options the run sets (``workers`` from ``post.workers``); never stored under ``init.options``."""

    def __post_init__(self) -> None:
        _choice("init.route", self.route, ROUTE_NAMES)
        _bool("init.postprocess", self.postprocess)
        if self.source_model is not None:
            if not isinstance(self.source_model, str) or not self.source_model:
                raise ValueError(f"init.source_model must be a checkpoint path, got {self.source_model!r}")
            if self.route not in ("auto", "transfer"):
                raise ValueError(
                    f"init.source_model is used by the 'transfer' route (or 'auto'), not by {self.route!r}"
                )
        if not isinstance(self.options, InitConfig):
            raise ValueError(f"init.options must be an InitConfig, got {self.options!r}")
        for name in self.RUN_WIDE:
            if getattr(self.options, name) != getattr(InitConfig, name):
                where = "post.workers" if name == "workers" else name
                raise ValueError(f"init.options.{name} is the run's: set {where} instead")
        _builds("init.options.train", lambda: TrainConfig.from_dict(self.options.train))
        _builds("init.options.gfn", lambda: GFNConfig.from_dict(self.options.gfn))

    def init_config(self, *, seed: int, num_threads: int | None, workers: int | None = 1) -> InitConfig:
        """The routes' ``InitConfig`` with the run's seed, threads and worker processes."""
        return dataclasses.replace(self.options, seed=seed, num_threads=num_threads, workers=workers)

    def to_dict(self) -> dict[str, Any]:
        opts = {k: v for k, v in self.options.to_dict().items() if k not in self.RUN_WIDE}
        return {
            "route": self.route,
            "postprocess": self.postprocess,
            "options": opts,
            "source_model": self.source_model,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InitSection:
        return _from_dict(cls, data, "init", {"options": InitConfig.from_dict})


@dataclass(frozen=True, kw_only=True)
class NetworkSection:
    """The GFN every round trains (``core.network.config.GFNConfig`` without ``num_classes``, which
    comes from the dataset), and whether round r > 1 starts from round r-1's weights."""

    backbone: str = GFNConfig.backbone
    pretrained: bool = GFNConfig.pretrained
    """Start every round's network from ImageNet weights (when available)."""
    warm_start: bool = False
    """Round r > 1 starts from round r-1's weights instead of a fresh (ImageNet) network."""
    output_stride: int = GFNConfig.output_stride
    use_bg: bool = GFNConfig.use_bg
    use_hgl: bool = GFNConfig.use_hgl
    use_gf: bool = GFNConfig.use_gf
    gf_radius: int = GFNConfig.gf_radius
    gf_eps: float = GFNConfig.gf_eps
    aspp_channels: int = GFNConfig.aspp_channels
    low_channels: int = GFNConfig.low_channels
    guide_channels: int = GFNConfig.guide_channels
    gf_mode: str = GFNConfig.gf_mode
    decoder_channels: int | None = GFNConfig.decoder_channels

    def __post_init__(self) -> None:
        for name in ("pretrained", "warm_start", "use_bg", "use_hgl", "use_gf"):
            _bool(f"network.{name}", getattr(self, name))
        _builds("network", lambda: self.gfn_config(2))

    def gfn_config(self, num_classes: int) -> GFNConfig:
        """The round's ``GFNConfig`` for a dataset of ``num_classes`` classes (background included)."""
        fields = {k: v for k, v in self.to_dict().items() if k != "warm_start"}
        return GFNConfig(**fields, num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkSection:
        return _from_dict(cls, data, "network")


@dataclass(frozen=True, kw_only=True)
class TrainSection:
    """Each round's training recipe (``core.training.config.TrainConfig`` without ``seed``,
    ``max_side`` and ``num_threads``, which are the run's: see ``working_sizes``). ``epochs`` to
    ``crop_size`` and ``min_steps`` are the rounds' own (short CPU rounds); the other knobs default to
    ``TrainConfig``'s."""

    epochs: int = 5
    batch_size: int = 8
    lr: float = TrainConfig.lr
    step_epochs: int = 4
    crop_size: int = 256
    """Training crop side (capped at ``max_side`` and at the largest training image, where a larger
    crop would be padding only). Keep it at least ``max_side``: the network then trains on whole images,
    at the scale it labels them. With crops of 192 from 256-pixel images the round-1 network on
    ecssd (500 images) fell from 0.80 (its GrabCut labels) to 0.68 mIoU, and to 0.43 after 10
    epochs: it learnt where the centred training objects sat inside a crop, which does not hold on
    the larger whole image (0.20 at 256 px against 0.68 at 192). Crop 256 gave 0.87
    (``docs/RESULTS.md``)."""
    # The rounds train with ``TrainConfig``'s recipe (AdamW + cosine, frozen stages, channels-last, image
    # cache); paper 001's SGD recipe they had before is ``LEGACY_RECIPE`` (docs/RESULTS.md, "Training
    # recipe": 30 ecssd 0.696 / 0.722 / 0.727 with it, 0.828 / 0.835 / ... with this one).
    optimizer: str = TrainConfig.optimizer
    momentum: float = TrainConfig.momentum
    weight_decay: float = TrainConfig.weight_decay
    schedule: str = TrainConfig.schedule
    warmup_fraction: float = TrainConfig.warmup_fraction
    scale_range: tuple[float, float] = TrainConfig.scale_range
    freeze_bn: bool | None = TrainConfig.freeze_bn
    freeze_stages: int | None = TrainConfig.freeze_stages
    backbone_lr_mult: float = TrainConfig.backbone_lr_mult
    channels_last: bool = TrainConfig.channels_last
    cache_images: bool = TrainConfig.cache_images
    time_budget_s: float | None = TrainConfig.time_budget_s
    min_steps: int = 60
    """Every round trains at least this many optimiser steps (a small set gets more epochs). The rounds'
    own floor: with 5 epochs alone, 12 and 30 horse photos trained 5 and 15 steps, the networks stayed
    undecided (probabilities near 0.5) and the rounds collapsed (0.79 -> 0.51 / 0.48 / 0.39 mIoU on 30
    horses); with 60 steps the same rounds reached 0.83-0.84 (``docs/RESULTS.md``, "Collapsed rounds").
    Sets of about 100 images or more already train more steps than this."""
    num_workers: int = TrainConfig.num_workers
    device: str | None = TrainConfig.device
    fixed_weight: int = 3
    """Weight of a human-corrected (fixed) mask in training, by repetition in every epoch
    (``core.refine.fixed``); the rounds' own, not a ``TrainConfig`` field."""

    ROUNDS_ONLY = ("fixed_weight",)

    def __post_init__(self) -> None:
        _int("train.fixed_weight", self.fixed_weight, 1)
        for name in ("epochs", "batch_size", "step_epochs", "crop_size"):
            _int(f"train.{name}", getattr(self, name), 1)
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr!r}")
        if not isinstance(self.scale_range, (list, tuple)) or len(self.scale_range) != 2:
            raise ValueError(f"train.scale_range must be (lo, hi), got {self.scale_range!r}")
        object.__setattr__(self, "scale_range", tuple(self.scale_range))
        for name in ("channels_last", "cache_images"):
            _bool(f"train.{name}", getattr(self, name))
        _builds(
            "train",
            lambda: self.train_config(seed=0, max_side=None, num_threads=None, crop_size=max(self.crop_size, 16)),
        )

    def train_config(self, *, seed: int, max_side: int | None, num_threads: int | None, crop_size: int) -> TrainConfig:
        """``TrainConfig`` of this recipe with the run-wide settings and the round's crop."""
        fields = {**{k: v for k, v in self.to_dict().items() if k not in self.ROUNDS_ONLY}, "crop_size": crop_size}
        return TrainConfig.from_dict({**fields, "seed": seed, "max_side": max_side, "num_threads": num_threads})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainSection:
        return _from_dict(cls, data, "train")


@dataclass(frozen=True, kw_only=True)
class PostSection:
    """From the trained network to a round's masks: prediction, fusion, calibration, post-processing."""

    chain: str = "crf+grabcut"
    """Post-processing of each round's probabilities: one of ``POSTPROCESS_METHODS`` or a chain of them
    joined by '+' (``core.refine.postchain``)."""
    params: PostprocessConfig = field(default_factory=PostprocessConfig)
    """Parameters of the chain's steps (dense CRF, GrabCut, guided filter; ``core.postprocess``)."""
    tta_flip: bool = True
    fuse: float = 0.3
    """Weight of the previous round's probabilities in the fused probabilities (0 = network only);
    from round 2 on (round 1 has only the initial route's uncalibrated scores before it)."""
    calibrate_area: bool = True
    """Shift the foreground log-odds so the network's mean foreground area on its training images
    equals that of their labels (``core.refine.calibrate``): stops the masks shrinking round by round."""
    consistency: str = "objectness"
    """Category consistency on probabilities (``core.refine.filters.consistent_probs``):
    ``"objectness"`` gives all foreground mass to the image's own classes, ``"background"`` (paper
    002) moves other classes' mass to background. Masks never keep another class either way."""
    image_max_side: int | None = DEFAULT_IMAGE_MAX_SIDE
    """The run's largest picture size: a picture whose longer side exceeds this is decoded at reduced
    size (JPEG DCT scaling, then an exact resize to this longer side) wherever the run reads it, and
    every stage (initial masks, probabilities, post-processing, training, overlays) works from that
    size; masks are written at the picture's own size (nearest-neighbour enlargement) and scored
    against ground truth there. Pictures at or below it are labelled exactly as with ``None`` (no
    bound). Why 2048: ``core.io.working.DEFAULT_IMAGE_MAX_SIDE``. A ``config.json`` from before this
    setting loads with the default; resumed, its later rounds read the earlier rounds' masks and
    probabilities at their own working size."""
    workers: int | None = None
    """Processes that post-process a round's images side by side (the dense CRF and GrabCut use one core
    each), and that make round 0's per-image masks (``InitConfig.workers``): ``None`` = one per core. The
    masks do not depend on it."""

    def __post_init__(self) -> None:
        _builds("post.chain", lambda: parse_chain(self.chain))
        if self.workers is not None:
            _int("post.workers", self.workers, 1)
        check_max_side("post.image_max_side", self.image_max_side)
        if not isinstance(self.params, PostprocessConfig):
            raise ValueError(f"post.params must be a PostprocessConfig, got {self.params!r}")
        _bool("post.tta_flip", self.tta_flip)
        _bool("post.calibrate_area", self.calibrate_area)
        _fraction("post.fuse", self.fuse)
        _choice("post.consistency", self.consistency, CONSISTENCY)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostSection:
        return _from_dict(cls, data, "post", {"params": PostprocessConfig.from_dict})


@dataclass(frozen=True, kw_only=True)
class FilterSection:
    """Which images and pixels train the next round."""

    area_min: float = 0.1
    area_max: float = 0.9
    """Images whose foreground area ratio lies outside [area_min, area_max] sit the next round out."""
    ignore_margin: float = 0.0
    """Pixels whose probability margin (top-1 minus top-2) is below this are ignored (255) in training
    (labels from network rounds; round-0 labels get only the boundary band). Off by default: soft
    foreground probabilities would take the object's hard parts out of training and let it shrink;
    the disagreement and boundary bands do the job."""
    boundary_band: float = 0.01
    """Half-width of the ignored band around label boundaries, as a fraction of the longer side
    (at least 1 px when > 0; 0 disables)."""
    drop_fraction: float = 0.2
    """Fraction of images with the lowest reliability left out of the next round's training."""

    def __post_init__(self) -> None:
        for name in ("area_min", "area_max"):
            _fraction(f"filters.{name}", getattr(self, name), closed=True)
        if not self.area_min < self.area_max:
            raise ValueError(
                f"need 0 <= filters.area_min < filters.area_max <= 1, got area_min={self.area_min}, "
                f"area_max={self.area_max}"
            )
        for name in ("ignore_margin", "boundary_band", "drop_fraction"):
            _fraction(f"filters.{name}", getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilterSection:
        return _from_dict(cls, data, "filters")


@dataclass(frozen=True, kw_only=True)
class StopSection:
    """When the run stops and which round it picks (``core.refine.stopping``)."""

    select_by: str = "label_free"
    """Which signal stops the run and picks the best round: ``"label_free"`` (never looks at ground
    truth) or ``"gt"`` (mIoU on images with ground truth). Both choices are always recorded."""
    min_gain: float = 0.002
    """Smallest improvement of the selection signal that counts as progress."""
    patience: int = 1
    """Stop after this many rounds without progress."""
    converged_change: float = 0.002
    """Stop (label-free) once the mean fraction of changed pixels falls below this."""
    collapse_guard: bool = True
    """The collapse guard (``core.refine.collapse``): a collapsed round is never kept and stops the run.
    Off (tests of the loop's mechanics, experiments), every verdict and the status are still recorded."""
    collapse_emptied: float = 0.2
    """A round collapses when more than this fraction of the images whose round-0 mask holds an object
    come out empty."""
    collapse_area_factor: float = 2.0
    """... or when its mean foreground area leaves [round 0's / f, round 0's x f]."""
    collapse_margin: float = 0.1
    """... or when its network is undecided: mean probability margin below this (near-0.5
    probabilities; measured 0.004-0.02 on collapsed rounds, 0.5 and more on sound ones)."""
    collapse_reliability_drop: float = 0.15
    """... or when its reliability falls more than this below the best earlier sound round's."""
    collapse_empty_status: float = 0.5
    """A run whose kept masks are empty for more than this fraction of the images ends with status
    ``"collapsed"`` (the CLI exits with code 3)."""

    def __post_init__(self) -> None:
        _choice("stop.select_by", self.select_by, SELECT_BY)
        _int("stop.patience", self.patience, 1)
        _fraction("stop.min_gain", self.min_gain)
        _fraction("stop.converged_change", self.converged_change)
        _bool("stop.collapse_guard", self.collapse_guard)
        for name in ("collapse_emptied", "collapse_margin", "collapse_reliability_drop", "collapse_empty_status"):
            _fraction(f"stop.{name}", getattr(self, name), closed=True)
        f = self.collapse_area_factor
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not f >= 1.0:
            raise ValueError(f"stop.collapse_area_factor must be a number >= 1, got {f!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StopSection:
        return _from_dict(cls, data, "stop")


SECTION_TYPES: dict[str, Any] = {
    "init": InitSection,
    "network": NetworkSection,
    "train": TrainSection,
    "post": PostSection,
    "filters": FilterSection,
    "stop": StopSection,
}
"""Each section of a ``RunConfig`` by name (``core.refine.config_keys.SECTIONS``)."""
