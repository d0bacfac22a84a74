"""Settings of one auto-labelling run: ``RunConfig``, its typed sections (``core.refine.sections``)
and ``working_sizes``, the one place the image size of every stage is derived.

Defaults follow paper 001 section IV-B (area ratio in [0.1, 0.9], train -> predict -> filter ->
next round) and paper 002 Algorithm 1 (post-process every round), plus what makes the loop earn
its gain on CPU: an ignore band in the training labels, dropping the least reliable images, flip
TTA, fusing the network's probabilities with the previous round's, dense-CRF post-processing.

``config.json`` holds the nested form ``to_dict`` writes; ``from_dict`` and ``replace`` also take
dotted names (``train.epochs``) and the flat names of older runs and options (``epochs``,
``train_options``; ``core.refine.config_keys``), so older run folders still load and resume.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.initial.routes import ROUTE_NAMES as INIT_ROUTES
from core.io.working import check_max_side
from core.network.config import LEGACY_FIELDS
from core.refine import config_keys
from core.refine.sections import (
    CONSISTENCY,
    POSTPROCESS_METHODS,
    SECTION_TYPES,
    SELECT_BY,
    FilterSection,
    InitSection,
    NetworkSection,
    PostSection,
    StopSection,
    TrainSection,
    parse_chain,
)

__all__ = [
    "CONSISTENCY",
    "INIT_ROUTES",
    "POSTPROCESS_METHODS",
    "SELECT_BY",
    "FilterSection",
    "InitSection",
    "NetworkSection",
    "PostSection",
    "RunConfig",
    "StopSection",
    "TrainSection",
    "WorkingSizes",
    "parse_chain",
    "working_sizes",
]


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything that decides a run's masks (saved as ``config.json``; resume checks it).

    Round 0 = initial masks from ``init``; rounds 1..``rounds`` each train the ``network`` with
    ``train`` on the current labels, predict and post-process (``post``), filter (``filters``), and
    ``stop`` decides when to stop and which round to keep.
    """

    rounds: int = 3
    """Maximum number of refinement rounds after round 0."""
    seed: int = 0
    """Seeds round 0 and every round (training uses ``seed`` + the round index)."""
    num_threads: int | None = 2
    """torch threads for the whole run (round 0 included); ``None`` leaves torch's setting."""
    source_images: int = 0
    """With a labelled ``source`` (transfer): this many of its images, with their human masks, join
    every round's training, so the network keeps the source's knowledge while it adapts (0 = none)."""
    max_side: int | None = 256
    """The rounds' working size: images are resized so the longer side is at most this many pixels
    for training and prediction (masks are always written at the image's own size); ``None`` keeps
    full resolution. What each stage derives from it: ``working_sizes``."""
    init: InitSection = field(default_factory=InitSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    train: TrainSection = field(default_factory=TrainSection)
    post: PostSection = field(default_factory=PostSection)
    filters: FilterSection = field(default_factory=FilterSection)
    stop: StopSection = field(default_factory=StopSection)

    def __post_init__(self) -> None:
        for name, cls in SECTION_TYPES.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(
                    f"RunConfig.{name} must be of type {cls.__name__}, got {getattr(self, name)!r} "
                    f"(RunConfig.from_dict also takes flat and dotted names)"
                )
        for name, minimum in (("rounds", 0), ("seed", 0), ("source_images", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
        if self.num_threads is not None and (
            isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 1
        ):
            raise ValueError(f"num_threads must be None or an integer >= 1, got {self.num_threads!r}")
        check_max_side("max_side", self.max_side)

    def to_dict(self) -> dict[str, Any]:
        """The nested, JSON-ready form (what ``config.json`` holds)."""
        top = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in SECTION_TYPES}
        return {**top, **{name: getattr(self, name).to_dict() for name in SECTION_TYPES}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build from the nested form, dotted names, the flat names of older ``config.json`` files, or a
        mix; an unknown or misspelt name raises ``ValueError`` naming it with the known ones."""
        flat = "train_options" in data and "train" not in data  # a config.json of the flat RunConfig
        if flat:
            data = {**config_keys.LEGACY_ROUND_RECIPE, **data}
        network = data.get("network")
        if flat or (isinstance(network, Mapping) and "gf_mode" not in network):  # written before gf_mode
            data = {**{f"network.{k}": v for k, v in LEGACY_FIELDS.items()}, **data}
        return cls._from_tree(config_keys.nest(data))

    def replace(self, changes: Mapping[str, Any] | None = None, /, **kwargs: Any) -> RunConfig:
        """A copy with ``changes`` and ``kwargs`` (dotted names such as ``{"train.epochs": 3}``, flat names
        such as ``epochs=3``, or whole sections); unknown names raise ``ValueError``."""
        return self._from_tree(config_keys.nest({**(changes or {}), **kwargs}, base=self.to_dict()))

    def settings(self) -> dict[str, Any]:
        """``{dotted name: value}`` of every setting, e.g. ``{"train.epochs": 5, ...}``."""
        return config_keys.leaves(self)

    def differences(self, other: RunConfig) -> list[str]:
        """Dotted names of the settings whose values differ from ``other``'s."""
        a, b = self.settings(), other.settings()
        return [k for k in a if _jsonish(a[k]) != _jsonish(b.get(k))]

    @classmethod
    def _from_tree(cls, tree: Mapping[str, Any]) -> RunConfig:
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in tree if k not in known]
        if unknown:
            raise ValueError(
                f"unknown RunConfig setting(s) {unknown}; known settings: {known} (sections take "
                f"dotted names, e.g. train.epochs){_did_you_mean(unknown[0])}"
            )
        kw = {k: SECTION_TYPES[k].from_dict(v) if k in SECTION_TYPES else v for k, v in tree.items()}
        return cls(**kw)


def _did_you_mean(name: str) -> str:
    names = [*config_keys.FLAT_NAMES, *config_keys.FLAT_NAMES.values(), *RunConfig().settings()]
    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _jsonish(v: Any) -> Any:
    """Normalise tuples to lists so a config round-tripped through JSON compares equal."""
    if isinstance(v, (list, tuple)):
        return [_jsonish(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _jsonish(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class WorkingSizes:
    """The longest image side (pixels) each stage of a run works at; ``None`` = the image's own size.

    The rounds' size is the one setting ``RunConfig.max_side``; round 0 and the post-processors keep
    sizes of their own, measured for their methods. Outside a run, ``TrainConfig.max_side`` (512, the
    ``train`` command's) and ``Labeller`` (the checkpoint's ``max_side``, 256 when absent) apply.
    """

    train: int | None
    """``TrainConfig.max_side`` of every round: ``max_side``."""
    crop: int
    """Every round's training crop before the largest-training-image cap (``refine_round.crop_size``):
    ``train.crop_size``, no larger than ``max_side`` (a larger crop would be padding only)."""
    predict: int | None
    """``predict(max_side=...)`` of every round: ``max_side``, the scale the network trained at."""
    init: int
    """Round 0: ``init.options.work_size`` (320; GrabCut, CAMs and the transfer/otsu networks work there
    whatever ``max_side`` is)."""
    post: int
    """The post-processing chain: ``post.params.max_side`` (400)."""
    image: int | None = None
    """Every picture the run reads, before any stage resizes it: ``post.image_max_side`` (2048; a larger
    picture is decoded at reduced size and every stage above works from that size)."""


def working_sizes(config: RunConfig) -> WorkingSizes:
    """Every stage's working size, derived from ``config`` here and nowhere else."""
    side = config.max_side
    crop = config.train.crop_size if side is None else min(config.train.crop_size, side)
    return WorkingSizes(
        train=side,
        crop=crop,
        predict=side,
        init=config.init.options.work_size,
        post=config.post.params.max_side,
        image=config.post.image_max_side,
    )
