"""Names of ``RunConfig`` settings: dotted names (``train.epochs``), the flat names of older
``config.json`` files and options (``epochs``, ``train_options``), and turning a mix of them into
the nested form ``RunConfig.to_dict`` writes.

Pure functions on plain dicts: the sections themselves (``core.refine.config``) refuse what is
unknown or wrong, naming the dotted setting.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

SECTIONS = ("init", "network", "train", "post", "filters", "stop")
"""The nested sections of a ``RunConfig``; the rest are run-wide settings at the top level."""

FLAT_NAMES: dict[str, str] = {
    "init_postprocess": "init.postprocess",
    "backbone": "network.backbone",
    "pretrained": "network.pretrained",
    "warm_start": "network.warm_start",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "step_epochs": "train.step_epochs",
    "crop_size": "train.crop_size",
    "postprocess": "post.chain",
    "tta_flip": "post.tta_flip",
    "fuse": "post.fuse",
    "calibrate_area": "post.calibrate_area",
    "consistency": "post.consistency",
    "area_min": "filters.area_min",
    "area_max": "filters.area_max",
    "ignore_margin": "filters.ignore_margin",
    "boundary_band": "filters.boundary_band",
    "drop_fraction": "filters.drop_fraction",
    "select_by": "stop.select_by",
    "min_gain": "stop.min_gain",
    "patience": "stop.patience",
    "converged_change": "stop.converged_change",
}
"""Flat name of the RunConfig before sections (config.json files, CLI, bench ``--set``) -> dotted name.
``init`` holding a route name (a string) means ``init.route``."""

OPTION_DICTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "init_options": ("init.options", ()),
    "network_options": ("network", ("backbone", "pretrained", "warm_start")),
    "train_options": ("train", ("epochs", "batch_size", "lr", "step_epochs", "crop_size")),
}
"""Old option dict -> (where its keys now live, the settings of that place it did not replace).
Setting one replaces the old dict's worth of settings (the rest back at their defaults), as it did;
its keys win over the flat names, as they did."""

MOVED: dict[tuple[str, str], str] = {
    ("init_options", "seed"): "the initial routes use the run's seed (set seed)",
    ("init_options", "num_threads"): "the initial routes use the run's num_threads",
    ("train_options", "seed"): "training is seeded by the run's seed plus the round index (set seed)",
    ("train_options", "num_threads"): "training uses the run's num_threads",
    ("train_options", "max_side"): "training works at the run's max_side (set max_side)",
    ("train_options", "crop_size"): "set train.crop_size (capped at max_side and the largest training image)",
    ("network_options", "num_classes"): "the number of classes comes from the dataset",
}
"""Keys of the old option dicts that overrode a run-wide setting: refused, saying where it went."""


LEGACY_ROUND_RECIPE: dict[str, Any] = {
    "train.optimizer": "sgd",
    "train.lr": 0.01,
    "train.momentum": 0.9,
    "train.weight_decay": 2e-4,
    "train.schedule": "step",
    "train.warmup_fraction": 0.0,
    "train.freeze_stages": 0,
    "train.backbone_lr_mult": 1.0,
    "train.channels_last": False,
    "train.cache_images": False,
}
"""The rounds' recipe of a flat ``config.json`` (written before the rounds had these settings): paper
001's SGD with step decay, nothing frozen. Such a run resumes with the recipe it was trained with."""


def dotted(name: str, value: Any = None) -> str:
    """The dotted name of a setting given by its dotted or flat name (``"epochs"`` -> ``"train.epochs"``)."""
    if name == "init" and isinstance(value, str):
        return "init.route"
    return FLAT_NAMES.get(name, name)


def nest(changes: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (a nested dict, e.g. ``RunConfig.to_dict()``) with ``changes`` applied: keys are section
    names with a mapping (the nested form), dotted names, flat names or old option dicts, in any mix.
    Setting a name replaces what was there (a whole section, or one leaf). Whole sections go first,
    then flat names, then option dicts (their keys won over the flat names), then dotted names."""
    tree = copy.deepcopy(dict(base or {}))
    for key, value in sorted(changes.items(), key=lambda kv: _rank(*kv)):  # stable sort
        if key in OPTION_DICTS:
            _set_option_dict(tree, key, value)
        else:
            _set(tree, dotted(key, value), value)
    return tree


def _rank(key: str, value: Any) -> int:
    if key in SECTIONS and not isinstance(value, str):
        return 0
    if key in OPTION_DICTS:
        return 2
    return 3 if "." in key else 1


def _set_option_dict(tree: dict[str, Any], key: str, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ValueError(f"{key} must be a mapping of setting -> value, got {value!r}")
    for k in value:
        if (key, k) in MOVED:
            raise ValueError(f"{key}[{k!r}] is no longer an option: {MOVED[key, k]}")
    where, kept = OPTION_DICTS[key]
    section, _, sub = where.partition(".")
    node = _plain(tree.get(section))
    if sub:  # init_options: the whole of init.options
        node[sub] = dict(value)
    else:
        node = {**{k: node[k] for k in kept if k in node}, **value}
    tree[section] = node


def _set(tree: dict[str, Any], name: str, value: Any) -> None:
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"setting name {name!r} has an empty part")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is not None and not isinstance(child, Mapping) and not dataclasses.is_dataclass(child):
            raise ValueError(f"{'.'.join(parts[: i + 1])} is a setting, not a section: cannot set {name}")
        node[part] = _plain(child)
        node = node[part]
    node[parts[-1]] = value


def _plain(node: Any) -> dict[str, Any]:
    """A mutable dict copy of a section given as a dict, a config object or nothing."""
    if node is None:
        return {}
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return node.to_dict() if hasattr(node, "to_dict") else dataclasses.asdict(node)
    return dict(node)


def leaves(obj: Any, data: Mapping[str, Any] | None = None, prefix: str = "") -> dict[str, Any]:
    """``{dotted name: value}`` of a config object's settings as its ``to_dict`` (or ``data``) writes
    them, walking into nested config objects (not into mapping-valued settings such as
    ``init.options.gfn``)."""
    out: dict[str, Any] = {}
    for key, value in (obj.to_dict() if data is None else data).items():
        sub = getattr(obj, key, None)
        if dataclasses.is_dataclass(sub) and isinstance(value, Mapping):
            out.update(leaves(sub, value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
