"""FiftyOne samples <-> the engine's ``core.data.Dataset``, and round masks -> ``fo.Segmentation`` fields.

The engine knows images by *stem*; a FiftyOne view knows them by sample id. :func:`build_target`
makes one ``Sample`` per usable FiftyOne sample (stem = file name without extension, made unique
with the sample id when two files share a name) and keeps the ``stem -> sample id`` map that
:func:`write_masks_field` and :func:`write_float_field` use to write results back.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.classmap import IGNORE_INDEX, ClassMap
from core.data.dataset import Dataset, Sample

log = logging.getLogger(__name__)

LABEL_TYPES = ("Classification", "Classifications")
MAX_LISTED = 20


class TargetProblems(ValueError):
    """Some samples cannot be labelled; ``problems`` maps each file path to the reason."""

    def __init__(self, problems: Mapping[str, str]):
        self.problems = dict(problems)
        lines = [f"  {p}: {why}" for p, why in list(self.problems.items())[:MAX_LISTED]]
        more = len(self.problems) - MAX_LISTED
        if more > 0:
            lines.append(f"  ... and {more} more")
        super().__init__(
            f"{len(self.problems)} sample(s) cannot be labelled:\n"
            + "\n".join(lines)
            + "\nSet skip_missing=True to label the other samples and skip these."
        )


@dataclass(frozen=True)
class Target:
    """The engine's view of a FiftyOne target: ``dataset`` plus the way back to the samples."""

    dataset: Dataset
    ids: dict[str, str]
    """stem -> FiftyOne sample id."""
    skipped: dict[str, str] = field(default_factory=dict)
    """file path -> reason, for samples left out (only with ``skip_missing``)."""

    @property
    def classmap(self) -> ClassMap:
        return self.dataset.classmap

    def skipped_list(self) -> list[dict[str, str]]:
        """``skipped`` as JSON/BSON-safe records ``{"path", "reason"}`` (paths hold dots)."""
        return [{"path": p, "reason": why} for p, why in self.skipped.items()]


def field_type_name(collection, field_name: str) -> str | None:
    """The label class name of an embedded-document field (e.g. ``"Segmentation"``), or ``None``."""
    f = collection.get_field(field_name)
    if f is None:
        return None
    doc_type = getattr(f, "document_type", None)
    return None if doc_type is None else doc_type.__name__


def fields_of_type(collection, type_names: Sequence[str]) -> list[str]:
    """Top-level fields of ``collection`` holding one of the label classes ``type_names``."""
    out = []
    for name, f in collection.get_field_schema().items():
        doc_type = getattr(f, "document_type", None)
        if doc_type is not None and doc_type.__name__ in type_names:
            out.append(name)
    return sorted(out)


def require_field(collection, field_name: str | None, type_names: Sequence[str], role: str) -> str:
    """The label class of ``field_name`` if it is one of ``type_names``; ``ValueError`` naming the candidates."""
    f = collection.get_field(field_name) if field_name else None
    kind = field_type_name(collection, field_name) if field_name and f is not None else None
    if kind is not None and kind in type_names:
        return kind
    candidates = fields_of_type(collection, type_names)
    where = f"dataset '{collection._root_dataset.name}'"
    if f is None:
        why = f"{role} {field_name!r} does not exist on {where}"
    else:
        why = f"{role} {field_name!r} on {where} holds {kind or 'plain values'}, not {' or '.join(type_names)}"
    raise ValueError(f"{why}; fields of type {' / '.join(type_names)}: {candidates or 'none'}")


def mask_targets_of(collection, field_name: str) -> dict[int, str] | None:
    ds = collection._root_dataset
    targets = ds.mask_targets.get(field_name) or ds.default_mask_targets or None
    if not targets:
        return None
    out = {}
    for k, v in targets.items():
        if isinstance(k, str) and not k.isdigit():
            raise ValueError(
                f"mask_targets of field {field_name!r} use RGB keys ({k!r}); only class-index masks are supported"
            )
        out[int(k)] = str(v)
    return out


def resolve_classmap(label_names: Sequence[str], gt_targets: Mapping[int, str] | None) -> ClassMap:
    """Class map over ``label_names``: in the ground truth's index order when it has mask targets (so
    its masks need no remapping), otherwise sorted; names not in the targets are appended."""
    names = sorted(set(label_names))
    if gt_targets:
        ordered = [n for _, n in sorted(gt_targets.items()) if n in names]
        return ClassMap.from_names(ordered + [n for n in names if n not in ordered])
    return ClassMap.from_names(names)


def gt_lut(gt_targets: Mapping[int, str] | None, classmap: ClassMap) -> np.ndarray | None:
    """Lookup table from ground-truth indices to ``classmap`` indices (0 stays background, classes
    the run does not know become ignore), or ``None`` when the indices already agree."""
    if not gt_targets:
        return None
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[0] = 0
    for idx, name in gt_targets.items():
        if 0 < idx < 256 and name in classmap.foreground:
            lut[idx] = classmap.index(name)
    if all(lut[i] == i for i in gt_targets if 0 <= i < 256):
        return None
    return lut


def unique_stems(filepaths: Sequence[str], ids: Sequence[str]) -> list[str]:
    """File names without extension; names shared by several files get ``_<sample id>`` appended."""
    bases = [Path(p).stem for p in filepaths]
    counts = Counter(bases)
    return [b if counts[b] == 1 else f"{b}_{sid}" for b, sid in zip(bases, ids)]


def _media_problem(path: str) -> str | None:
    from fiftyone.core.media import IMAGE, get_media_type

    try:
        kind = get_media_type(path)
    except Exception:  # unknown extensions raise in some versions
        kind = None
    if kind != IMAGE:
        return f"not an image (media type {kind or 'unknown'})"
    if not os.path.isfile(path):
        return "file not found"
    return None


def sample_labels(collection, label_field: str | None, label: str | None) -> list[tuple[str, ...]]:
    """Image-level class names per sample, in ``collection`` order."""
    if label:
        return [(label,)] * len(collection)
    kind = require_field(collection, label_field, LABEL_TYPES, "label_field")
    if kind == "Classification":
        vals = collection.values(f"{label_field}.label")
        return [(v,) if v else () for v in vals]
    vals = collection.values(f"{label_field}.classifications.label")
    return [tuple(dict.fromkeys(v for v in (vs or []) if v)) for vs in vals]


def build_target(
    collection,
    *,
    label_field: str | None = None,
    label: str | None = None,
    gt_field: str | None = None,
    skip_missing: bool = False,
    classmap: ClassMap | None = None,
    labels_required: bool = True,
) -> Target:
    """The engine ``Dataset`` for the samples of ``collection``.

    ``label_field``: a Classification/Classifications field giving each image's classes, or
    ``label``: one class for every image. ``gt_field``: an optional Segmentation field used only to
    report quality (its ``mask_targets`` fix the class order). ``classmap``: force a class map (an
    existing run's, when applying its model). Samples that are not images, whose file is missing or
    unreadable, or that have no label raise :class:`TargetProblems` listing them, unless
    ``skip_missing``. With ``labels_required=False`` (applying a model) the labels are optional.
    """
    from core.io.images import ImageReadError, check_images

    if not label_field and not label and labels_required:
        raise ValueError(
            "give label_field (a Classification/Classifications field) or label (one class for every image)"
        )
    if label_field and label:
        raise ValueError(f"give either label_field ({label_field!r}) or label ({label!r}), not both")
    if len(collection) == 0:
        raise ValueError("the target holds no samples; nothing to label")
    ids = collection.values("id")
    paths = collection.values("filepath")
    labels = sample_labels(collection, label_field, label) if label_field or label else [()] * len(ids)
    gt_targets = None
    gt_paths: list[str | None] = [None] * len(ids)
    gt_present: list[bool] = [False] * len(ids)
    if gt_field:
        require_field(collection, gt_field, ("Segmentation",), "gt_field")
        gt_targets = mask_targets_of(collection, gt_field)
        gt_paths = collection.values(f"{gt_field}.mask_path")
        gt_present = [x is not None for x in collection.values(f"{gt_field}.id")]

    bad: dict[int, str] = {}
    for i, (path, labs) in enumerate(zip(paths, labels)):
        why = _media_problem(path)
        if why is None and not labs and labels_required:
            why = f"no label in {label_field!r}"
        if why is not None:
            bad[i] = why
    readable = sorted({p for i, p in enumerate(paths) if i not in bad})
    try:
        check_images(readable)
    except ImageReadError as exc:
        bad.update({i: exc.failures[p] for i, p in enumerate(paths) if p in exc.failures and i not in bad})
    problems = {paths[i]: why for i, why in sorted(bad.items())}
    if problems and not skip_missing:
        raise TargetProblems(problems)

    keep = [i for i in range(len(paths)) if i not in bad]
    if not keep:
        raise ValueError(f"none of the {len(paths)} samples can be labelled (e.g. {next(iter(problems.items()))})")
    if classmap is None:
        if not labels_required and not any(labels[i] for i in keep):
            raise ValueError("a class map is needed: give label_field or label")
        classmap = resolve_classmap([n for i in keep for n in labels[i]], gt_targets)
    else:
        unknown = sorted({n for i in keep for n in labels[i]} - set(classmap.foreground))
        if unknown:
            raise ValueError(f"labels {unknown} are not classes of the run ({list(classmap.foreground)})")
    lut = gt_lut(gt_targets, classmap)
    stems = unique_stems([paths[i] for i in keep], [ids[i] for i in keep])
    samples, by_stem = [], {}
    for stem, i in zip(stems, keep):
        mask_path, mask_fn = None, None
        gt_path = gt_paths[i]
        if gt_field and gt_present[i]:  # (gt_present is all False without gt_field)
            if gt_path and lut is None:
                mask_path = Path(gt_path)
            else:
                mask_fn = _gt_loader(collection, ids[i], gt_field, lut)
        samples.append(
            Sample(stem=stem, image_path=Path(paths[i]), labels=labels[i], mask_path=mask_path, mask_fn=mask_fn)
        )
        by_stem[stem] = ids[i]
    if problems:
        log.warning(
            "skipping %d sample(s) that cannot be labelled: %s",
            len(problems),
            "; ".join(f"{p}: {w}" for p, w in list(problems.items())[:5]),
        )
    return Target(dataset=Dataset(samples=tuple(samples), classmap=classmap), ids=by_stem, skipped=problems)


def _gt_loader(collection, sample_id: str, gt_field: str, lut: np.ndarray | None) -> Callable[[], np.ndarray]:
    ds = collection._root_dataset

    def load() -> np.ndarray:
        seg = ds[sample_id][gt_field]
        mask = np.asarray(seg.get_mask())
        if mask.ndim == 3:
            raise ValueError(
                f"ground truth {gt_field!r} of sample {sample_id} is an RGB mask; only class-index masks are supported"
            )
        mask = mask.astype(np.uint8)
        return mask if lut is None else lut[mask]

    return load


# ------------------------------------------------------------------------------- write back
def set_mask_targets(dataset, field_name: str, classmap: ClassMap) -> None:
    """``dataset.mask_targets[field_name] = {index: class name}``."""
    targets = dict(dataset.mask_targets)
    targets[field_name] = {i: n for i, n in classmap.to_dict().items()}
    dataset.mask_targets = targets
    dataset.save()


def write_masks_field(
    dataset, field_name: str, masks: Mapping[str, Path], ids: Mapping[str, str], classmap: ClassMap
) -> int:
    """Write ``fo.Segmentation(mask_path=...)`` for every stem of ``masks`` (files are referenced,
    not copied) and set the field's mask targets. Returns the number of samples written."""
    import fiftyone as fo

    values = {ids[s]: fo.Segmentation(mask_path=str(Path(p).resolve())) for s, p in masks.items() if s in ids}
    dataset.set_values(field_name, values, key_field="id")
    set_mask_targets(dataset, field_name, classmap)
    return len(values)


def write_float_field(dataset, field_name: str, values: Mapping[str, float | None], ids: Mapping[str, str]) -> None:
    """Write one float per stem to ``field_name`` (declared as a FloatField, so all-None values work)."""
    import fiftyone as fo

    if dataset.get_field(field_name) is None:
        dataset.add_sample_field(field_name, fo.FloatField)
    data = {ids[s]: (None if v is None else float(v)) for s, v in values.items() if s in ids}
    dataset.set_values(field_name, data, key_field="id")
