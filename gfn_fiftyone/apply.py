"""``apply_model``: label other samples with a finished run's trained network.

Uses ``core.refine.apply.Labeller`` (the best round's checkpoint, or a chosen round's) and writes a
Segmentation field whose masks are PNG files under ``<run_dir>/applied/<field>/``, its mask
targets, and ``<field>_reliability``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.classmap import ClassMap
from gfn_fiftyone import convert, runs
from gfn_fiftyone.naming import RunNames
from gfn_fiftyone.progress import ProgressFn

log = logging.getLogger(__name__)

BATCH = 16


def load_labeller(run_dir: Path, round_index: int | str | None):
    """The ``Labeller`` of a run's best round (or of ``round_index``)."""
    from core.refine.apply import Labeller
    from core.refine.runner import load_run
    from gfn_fiftyone.export import resolve_round

    run = load_run(run_dir)
    k = resolve_round(run, round_index)
    if hasattr(Labeller, "from_run"):
        return Labeller.from_run(run_dir, k), k
    with_model = [r.checkpoint for r in run.rounds if r.checkpoint is not None and r.index >= k] or [
        r.checkpoint for r in run.rounds if r.checkpoint is not None
    ]
    if not with_model:
        raise ValueError(f"run {run_dir} has no trained model (only round 0 is finished)")
    return Labeller.from_checkpoint(with_model[0]), k


def apply_model(
    collection,
    output_prefix: str,
    output_field: str,
    *,
    round_index: int | str | None = "best",
    label_field: str | None = None,
    overwrite: bool = False,
    skip_missing: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Label the samples of ``collection`` with run ``output_prefix``'s model into ``output_field``.

    ``label_field`` (optional): each image's classes; other classes are then removed from its mask
    (category consistency). Raises ``ValueError`` if ``output_field`` exists and not ``overwrite``.
    """
    from core.io.images import write_mask

    dataset = collection._root_dataset
    record = runs.load_record(dataset, RunNames(output_prefix).run_key)
    if not output_field or not output_field.isidentifier():
        raise ValueError(f"output_field {output_field!r} must be a valid field name (letters, digits, underscores)")
    rel_field = f"{output_field}_reliability"
    existing = [f for f in (output_field, rel_field) if dataset.get_field(f) is not None]
    if existing and not overwrite:
        raise ValueError(
            f"field(s) {existing} exist on dataset '{dataset.name}'; pass overwrite=True to "
            f"replace them, or choose another output_field"
        )
    classmap = ClassMap(tuple(record.classes))
    target = convert.build_target(
        collection, label_field=label_field, skip_missing=skip_missing, classmap=classmap, labels_required=False
    )
    labeller, k = load_labeller(record.folder, round_index)
    out_dir = record.folder / "applied" / output_field
    samples = list(target.dataset)
    masks, scores = {}, {}
    for start in range(0, len(samples), BATCH):
        batch = samples[start : start + BATCH]
        labels = [list(s.labels) or None for s in batch]
        for s, (mask, score, _) in zip(batch, labeller.label_many([s.image_path for s in batch], labels)):
            path = out_dir / f"{s.stem}.png"
            write_mask(path, mask)
            masks[s.stem], scores[s.stem] = path, score
        if progress is not None:
            progress(min(1.0, (start + len(batch)) / len(samples)), f"labelled {start + len(batch)}/{len(samples)}")
    if existing:
        dataset.delete_sample_fields(existing)
    convert.write_masks_field(dataset, output_field, masks, target.ids, classmap)
    convert.write_float_field(dataset, rel_field, scores, target.ids)
    applied = dict(runs.results_dict(dataset, record.key).get("applied") or {})
    applied[output_field] = {"round": k, "n_images": len(masks), "masks_dir": str(out_dir)}
    runs.save_results(dataset, record.key, applied=applied)
    log.info("applied round %d of run %r to %d samples -> %r", k, output_prefix, len(masks), output_field)
    return {"field": output_field, "round": k, "n_images": len(masks), "skipped": target.skipped_list()}
