"""``export_labels``: a Segmentation field of the *current view* as PNG masks, COCO JSON or a VOC folder.

What is exported is what the view holds now (its samples, and the field's masks including any
edits made since the run: a mask replaced in the App or from Python), not the run folder:

* ``png``: FiftyOne's own ``fo.types.ImageSegmentationDirectory`` (``data/`` images unless
  ``export_media=False``, ``labels/<name>.png`` class-index masks) plus ``mask_targets.json``
  (``{index: class}``), reloadable with ``fo.Dataset.from_dir(..., ImageSegmentationDirectory)``;
* ``coco`` with ``polygons``: FiftyOne's conversion (``Segmentation.to_detections(mask_types="stuff")``,
  one object per image and class) and FiftyOne's ``COCODetectionDatasetExporter``;
* ``coco`` (RLE, pixel-exact) and ``voc``: the project's writers (``core.formats.export_masks``);
  FiftyOne's COCO exporter writes RLE only for crowd objects, and it has no VOC segmentation format.

Every mask is read and checked (2-D, class indices of the field's mask targets or 255) before
anything is written; outputs are built beside ``dst`` and moved in only on success, and an
existing ``dst`` is replaced only with ``overwrite``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.classmap import IGNORE_INDEX, ClassMap
from gfn_fiftyone import convert, runs
from gfn_fiftyone.naming import RunNames
from gfn_fiftyone.progress import ProgressFn

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("coco", "voc", "png")
MASK_TARGETS_FILE = "mask_targets.json"
POLYGON_TOLERANCE = 1
"""Pixels of polygon simplification in FiftyOne's COCO conversion (its default is 2)."""


def resolve_round(run, round_index: int | str | None) -> int:
    """``round_index`` as an int: ``None``/``"best"`` is the run's best round; ``ValueError`` listing the
    finished rounds otherwise."""
    if round_index is None or str(round_index).strip().lower() in ("", "best"):
        return int(run.best_round)
    try:
        k = int(round_index)
    except (TypeError, ValueError):
        raise ValueError(f"round must be 'best' or a round number, got {round_index!r}") from None
    done = [r.index for r in run.rounds]
    if k not in done:
        raise ValueError(f"run {run.run_dir} has no finished round {k}; rounds: {done}")
    return k


def field_of_round(dataset, output_prefix: str, round_index: int | str | None) -> str:
    """The Segmentation field of run ``output_prefix``'s round (``"best"``/``None``: ``<prefix>``)."""
    names = RunNames(output_prefix)
    runs.load_record(dataset, names.run_key)  # ValueError listing the runs when there is none
    if round_index is None or str(round_index).strip().lower() in ("", "best"):
        return names.best
    try:
        k = int(round_index)
    except (TypeError, ValueError):
        raise ValueError(f"round must be 'best' or a round number, got {round_index!r}") from None
    if dataset.get_field(names.round(k)) is None:
        have = sorted(k for k in (names.round_of(f) for f in dataset.get_field_schema()) if k is not None)
        raise ValueError(f"run {output_prefix!r} has no field for round {k} ({names.round(k)}); rounds: {have}")
    return names.round(k)


def default_destination(run_dir: Path, fmt: str, field: str, polygons: bool = False) -> Path:
    """``<run_dir>/export/<fmt>_<field>`` (``.json`` file for COCO)."""
    if fmt == "coco":
        return run_dir / "export" / f"coco_{field}{'_polygons' if polygons else ''}.json"
    return run_dir / "export" / f"{fmt}_{field}"


def field_classmap(collection, field: str) -> ClassMap:
    """The class map of a Segmentation field from its mask targets (``{0: background, 1: ...}``);
    ``ValueError`` saying how to set them when it has none or they skip an index."""
    targets = convert.mask_targets_of(collection, field)
    if not targets:
        raise ValueError(
            f"field {field!r} has no mask targets; set dataset.mask_targets[{field!r}] = "
            f"{{0: 'background', 1: 'class', ...}} and save the dataset"
        )
    idx = sorted(targets)
    if idx != list(range(len(idx))):
        raise ValueError(
            f"mask targets of field {field!r} must be the indices 0..N-1 (0 = background), got {idx}; "
            f"remap the masks or the targets first"
        )
    return ClassMap(tuple(targets[i] for i in idx))


def view_masks(view, field: str, classmap: ClassMap) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """``(sample ids, image paths, {stem: mask})`` of the samples of ``view`` that have ``field``,
    every mask read and checked first (``ValueError`` naming the image and what is wrong)."""
    ids, paths, segs = view.values("id"), view.values("filepath"), view.values(field)
    keep = [i for i, seg in enumerate(segs) if seg is not None]
    stems = convert.unique_stems([paths[i] for i in keep], [ids[i] for i in keep])
    allowed = np.array(sorted({*range(classmap.num_classes), IGNORE_INDEX}))
    masks: dict[str, np.ndarray] = {}
    for stem, i in zip(stems, keep):
        try:
            mask = np.asarray(segs[i].get_mask())
        except Exception as exc:
            raise ValueError(f"{paths[i]}: mask of field {field!r} cannot be read ({exc})") from None
        if mask.ndim != 2:
            raise ValueError(f"{paths[i]}: mask of field {field!r} has shape {mask.shape}, expected (H, W) indices")
        bad = np.setdiff1d(np.unique(mask), allowed)
        if bad.size:
            raise ValueError(
                f"{paths[i]}: mask of field {field!r} holds class indices {bad.tolist()[:5]} outside its mask "
                f"targets 0..{classmap.num_classes - 1} (255 = ignore)"
            )
        masks[stem] = mask.astype(np.uint8)
    return [ids[i] for i in keep], [paths[i] for i in keep], masks


def export_labels(
    collection,
    output_prefix: str | None = None,
    *,
    field: str | None = None,
    round_index: int | str | None = "best",
    fmt: str = "coco",
    dst: str | os.PathLike | None = None,
    polygons: bool = False,
    export_media: bool = True,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Write the ``field`` masks of the samples of ``collection`` (a dataset or view) as ``fmt``.

    ``field`` defaults to run ``output_prefix``'s round ``round_index`` (``"best"``: ``<prefix>``);
    ``dst`` defaults to ``<run folder>/export/``. ``export_media`` (``png`` only): copy the images
    into ``data/``. Returns ``{"path", "field", "format", "n_images", "exporter"}``.
    """
    from core.io.atomic import atomic_path, check_can_write, staged_dir

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format {fmt!r} is unknown; choose one of {list(EXPORT_FORMATS)}")
    if polygons and fmt != "coco":
        raise ValueError(f"polygons apply to the coco format only, not to {fmt!r}")
    dataset = collection._root_dataset
    if field is None:
        if not output_prefix:
            raise ValueError("give field (a Segmentation field) or output_prefix (a run)")
        field = field_of_round(dataset, output_prefix, round_index)
    convert.require_field(collection, field, ("Segmentation",), "field")
    if dst is None:
        if not output_prefix:
            raise ValueError("give dst (where to write); without a run there is no default folder")
        run_dir = runs.load_record(dataset, RunNames(output_prefix).run_key).folder
        dst = default_destination(run_dir, fmt, field, polygons)
    dst = check_can_write(Path(dst).expanduser(), overwrite)
    classmap = field_classmap(collection, field)
    view = collection.exists(field)
    if len(view) == 0:
        raise ValueError(f"no sample of the view has masks in field {field!r}; nothing to export")
    if progress is not None:
        progress(0.05, f"checking {len(view)} masks of {field!r}")
    ids, paths, masks = view_masks(view, field, classmap)
    if progress is not None:
        progress(0.3, f"writing {fmt}")
    if fmt == "png":
        with staged_dir(dst) as tmp:
            view.select(ids).export(
                export_dir=str(tmp),
                dataset_type=_fo_types().ImageSegmentationDirectory,
                label_field=field,
                export_media=bool(export_media),
                progress=False,
            )
            (tmp / MASK_TARGETS_FILE).write_text(json.dumps(classmap.to_dict(), indent=2) + "\n")
        written, exporter = dst, "fiftyone.ImageSegmentationDirectory"
    elif fmt == "coco" and polygons:
        with atomic_path(dst, overwrite=overwrite) as tmp:
            _fiftyone_coco_polygons(view.select(ids), field, classmap, tmp)
        written, exporter = dst, "fiftyone.COCODetectionDataset"
    else:
        from core.data.dataset import Dataset, Sample
        from core.formats import export_masks

        images = Dataset(
            samples=tuple(Sample(stem=s, image_path=Path(p)) for s, p in zip(masks, paths)), classmap=classmap
        )
        written, exporter = export_masks(masks, images, dst, to=fmt, overwrite=overwrite), "core.formats"
    if progress is not None:
        progress(1.0, f"exported {len(masks)} masks")
    log.info("exported %d masks of %r as %s to %s (%s)", len(masks), field, fmt, written, exporter)
    return {
        "path": str(written),
        "field": field,
        "round": _round_of(dataset, output_prefix, field),
        "format": fmt,
        "n_images": len(masks),
        "exporter": exporter,
    }


def _round_of(dataset, output_prefix: str | None, field: str) -> int | None:
    """The round of run ``output_prefix`` that ``field`` holds (the best round for ``<prefix>``), else ``None``."""
    if not output_prefix:
        return None
    names = RunNames(output_prefix)
    if field == names.best:
        best = runs.load_record(dataset, names.run_key).best_round
        return None if best is None else int(best)
    return names.round_of(field)


def _fo_types():
    import fiftyone as fo

    return fo.types


def _fiftyone_coco_polygons(view, field: str, classmap: ClassMap, json_path: Path) -> None:
    """FiftyOne's COCO export of ``field``: one polygon object per image and class present."""
    import fiftyone.core.metadata as fom
    import fiftyone.utils.coco as fouc

    targets: Mapping[int, str] = {i: n for i, n in classmap.to_dict().items() if i != 0}
    exporter = fouc.COCODetectionDatasetExporter(
        labels_path=str(json_path),
        export_media=False,
        classes=list(classmap.foreground),
        tolerance=POLYGON_TOLERANCE,
    )
    with exporter:
        exporter.log_collection(view)
        for path, seg in zip(view.values("filepath"), view.values(field)):
            dets = seg.to_detections(mask_targets=targets, mask_types="stuff")
            exporter.export_sample(path, dets, metadata=fom.ImageMetadata.build_for(path))
