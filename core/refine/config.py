"""Settings of one auto-labelling run: initial masks, refinement rounds, filters, stopping.

Defaults follow paper 001 section IV-B (area ratio in [0.1, 0.9], train -> predict -> filter ->
next round) and paper 002 Algorithm 1 (post-process every round), plus what makes the loop earn
its gain on CPU: an ignore band in the training labels, dropping the least reliable images, flip
TTA, fusing the network's probabilities with the previous round's, dense-CRF post-processing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from core.config import check_known_fields

INIT_ROUTES = ("auto", "transfer", "otsu", "cam", "grabcut")
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
        raise ValueError(f"postprocess {spec!r} is unknown: unknown step(s) {bad}; use one of "
                         f"{list(POSTPROCESS_METHODS)} or several joined by '+', e.g. 'crf+grabcut'")
    return steps


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything that decides a run's masks (saved as ``config.json``; resume checks it).

    Round 0 = initial masks from ``init``; rounds 1..``rounds`` each train the GFN on the
    current labels, predict, fuse, post-process and filter.
    """

    # round 0
    init: str = "auto"
    """Initial-mask route: one of ``INIT_ROUTES`` (``core.initial``)."""
    init_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword settings for ``core.initial.InitConfig`` (refused there if unknown)."""
    init_postprocess: bool = True
    """Run ``postprocess`` on round 0 too when its masks come from a network (routes ``transfer`` and
    ``otsu``): round 0 of the transfer network on weizmann_horse went from 0.752 to 0.847 mIoU with
    ``crf+grabcut``. The GrabCut-based routes' masks are kept as they are."""
    # rounds and network
    rounds: int = 3
    """Maximum number of refinement rounds after round 0."""
    backbone: str = "mobilenet_v2"
    pretrained: bool = True
    """Start every round's network from ImageNet weights (when available)."""
    warm_start: bool = False
    """Round r > 1 starts from round r-1's weights instead of a fresh (ImageNet) network."""
    network_options: Mapping[str, Any] = field(default_factory=dict)
    """Extra ``core.network.config.GFNConfig`` fields (e.g. ``gf_radius``)."""
    # training
    epochs: int = 5
    batch_size: int = 8
    lr: float = 0.01
    step_epochs: int = 4
    crop_size: int = 256
    """Training crop side (capped at ``max_side`` and at the largest training image, where a larger
    crop would be padding only). Keep it at least ``max_side``: the network then trains on whole images,
    at the scale it labels them. With crops of 192 from 256-pixel images the round-1 network on
    ecssd (500 images) fell from 0.80 (its GrabCut labels) to 0.68 mIoU, and to 0.43 after 10
    epochs: it learnt where the centred training objects sat inside a crop, which does not hold on
    the larger whole image (0.20 at 256 px against 0.68 at 192). Crop 256 gave 0.87
    (``docs/RESULTS.md``)."""
    max_side: int | None = 256
    """Images are resized so the longer side is at most this many pixels for training and prediction
    (masks are always written at the image's own size); ``None`` keeps full resolution."""
    train_options: Mapping[str, Any] = field(default_factory=dict)
    """Extra ``core.training.trainer.TrainConfig`` fields (e.g. ``backbone_lr_mult``, ``scale_range``)."""
    seed: int = 0
    num_threads: int | None = 2
    source_images: int = 0
    """With a labelled ``source`` (transfer): this many of its images, with their human masks, join
    every round's training, so the network keeps the source's knowledge while it adapts (0 = none)."""
    # prediction and post-processing
    tta_flip: bool = True
    fuse: float = 0.3
    """Weight of the previous round's probabilities in the fused probabilities (0 = network only);
    from round 2 on (round 1 has only the initial route's uncalibrated scores before it)."""
    calibrate_area: bool = True
    """Shift the foreground log-odds so the network's mean foreground area on its training images
    equals that of their labels (``core.refine.calibrate``): stops the masks shrinking round by round."""
    postprocess: str = "crf+grabcut"
    """Post-processing of each round's probabilities: one of ``POSTPROCESS_METHODS`` or a chain of them
    joined by '+' (``core.refine.postchain``)."""
    # filters
    consistency: str = "objectness"
    """Category consistency on probabilities (``core.refine.filters.consistent_probs``):
    ``"objectness"`` gives all foreground mass to the image's own classes, ``"background"`` (paper
    002) moves other classes' mass to background. Masks never keep another class either way."""
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
    # stopping and selection
    select_by: str = "label_free"
    """Which signal stops the run and picks the best round: ``"label_free"`` (never looks at ground
    truth) or ``"gt"`` (mIoU on images with ground truth). Both choices are always recorded."""
    min_gain: float = 0.002
    """Smallest improvement of the selection signal that counts as progress."""
    patience: int = 1
    """Stop after this many rounds without progress."""
    converged_change: float = 0.002
    """Stop (label-free) once the mean fraction of changed pixels falls below this."""

    def __post_init__(self) -> None:
        if self.init not in INIT_ROUTES:
            raise ValueError(f"init route {self.init!r} is unknown; choose one of {list(INIT_ROUTES)}")
        parse_chain(self.postprocess)
        if self.consistency not in CONSISTENCY:
            raise ValueError(f"consistency {self.consistency!r} is unknown; choose one of {list(CONSISTENCY)}")
        if self.select_by not in SELECT_BY:
            raise ValueError(f"select_by {self.select_by!r} is unknown; choose one of {list(SELECT_BY)}")
        if not isinstance(self.rounds, int) or self.rounds < 0:
            raise ValueError(f"rounds must be an integer >= 0, got {self.rounds!r}")
        if not 0.0 <= self.area_min < self.area_max <= 1.0:
            raise ValueError(f"need 0 <= area_min < area_max <= 1, got area_min={self.area_min}, area_max={self.area_max}")
        for name in ("fuse", "ignore_margin", "drop_fraction", "boundary_band"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"{name} must lie in [0, 1), got {v!r}")
        if not isinstance(self.source_images, int) or self.source_images < 0:
            raise ValueError(f"source_images must be an integer >= 0, got {self.source_images!r}")
        for name in ("epochs", "batch_size", "crop_size", "patience"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.max_side is not None and (not isinstance(self.max_side, int) or self.max_side < 16):
            raise ValueError(f"max_side must be None or an integer >= 16, got {self.max_side!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for name in ("init_options", "network_options", "train_options"):
            if not isinstance(getattr(self, name), Mapping):
                raise ValueError(f"{name} must be a mapping of setting -> value, got {getattr(self, name)!r}")
            object.__setattr__(self, name, dict(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``dataclasses.asdict``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        """Build from a dict; unknown keys raise ``ValueError`` listing the known ones."""
        check_known_fields(cls, data, noun="setting")
        return cls(**dict(data))

    def replace(self, **changes: Any) -> "RunConfig":
        """A copy with ``changes`` (unknown names raise ``ValueError``)."""
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def differences(self, other: "RunConfig") -> list[str]:
        """Names of the settings whose values differ from ``other``'s."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if _jsonish(a[k]) != _jsonish(b[k])]


def _jsonish(v: Any) -> Any:
    """Normalise tuples to lists so a config round-tripped through JSON compares equal."""
    if isinstance(v, (list, tuple)):
        return [_jsonish(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonish(x) for k, x in v.items()}
    return v
