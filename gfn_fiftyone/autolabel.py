"""``auto_label``: run the engine on a FiftyOne view and write every round back as fields.

An ordinary function (the ``auto_label`` operator only gathers its arguments): it builds the
engine's dataset from the view (:mod:`gfn_fiftyone.convert`), registers the run on the dataset
(:mod:`gfn_fiftyone.runs`), calls ``core.refine.runner.run_autolabel`` on a run folder kept for
this prefix, writes each round's fields as soon as the round is finished on disk, and finally the
best round under the prefix itself. A run that stopped half-way (status ``running`` or ``failed``)
resumes from its last finished round when started again with the same prefix. The engine's collapse
guard (``core.refine.collapse``) gives every finished run an outcome, ``"ok"``, ``"degraded"`` or
``"collapsed"``: it is stored on the run (``outcome`` in its config, ``status`` in its results),
logged as a warning or an error, and returned with a ``warning`` line when it is not ``"ok"``.

Besides the masks, every run writes the label-free review signals of :mod:`gfn_fiftyone.signals`
(confidence heatmaps per round, the best round's reliability parts, a tag on dropped samples).

``overwrite=True`` replaces an existing run only when the new one succeeded: the new run is made in
a staging folder beside the old one (``.<prefix>.new``) while the old fields, run record and mask
files stay untouched; on success the folders are swapped and the fields rewritten; on failure the
staging folder is removed and the old run is exactly as it was (issue 12).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.refine.config import RunConfig
from gfn_fiftyone import convert, review, runs, signals
from gfn_fiftyone.naming import RunNames
from gfn_fiftyone.progress import ProgressFn, RunProgress

if TYPE_CHECKING:
    from core.refine.runner import RoundInfo

log = logging.getLogger(__name__)

RUNS_DIR_ENV = "GFN_FIFTYONE_RUNS_DIR"


def make_config(
    *, init: str = "auto", rounds: int = 3, backbone: str | None = None, engine_options: Mapping[str, Any] | None = None
) -> RunConfig:
    """The engine's ``RunConfig`` from the operator's settings plus any other ``RunConfig`` settings in
    ``engine_options`` (nested, dotted such as ``train.epochs``, or flat names; unknown names raise
    ``ValueError`` listing the known ones)."""
    data = {**(engine_options or {}), "init.route": init, "rounds": int(rounds)}
    if backbone:
        data["network.backbone"] = backbone
    return RunConfig.from_dict(data)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "dataset"


def default_run_dir(dataset, prefix: str, runs_dir: str | os.PathLike | None = None) -> Path:
    """``<root>/<dataset name>/<prefix>`` with root = ``runs_dir``, else ``$GFN_FIFTYONE_RUNS_DIR``,
    else ``fo.config.default_dataset_dir/gfn_runs``."""
    import fiftyone as fo

    root = runs_dir or os.environ.get(RUNS_DIR_ENV) or Path(fo.config.default_dataset_dir) / "gfn_runs"
    return (Path(root).expanduser() / _safe(dataset.name) / prefix).resolve()


def existing_outputs(dataset, names: RunNames) -> list[str]:
    """Fields and evaluation keys of ``dataset`` that a run with this prefix would own."""
    fields = names.owned(dataset.get_field_schema().keys())
    evals = [k for k in dataset.list_evaluations() if k.startswith(f"{names.prefix}_round_")]
    return fields + [f"evaluation {k}" for k in evals]


def clear_outputs(dataset, names: RunNames) -> None:
    """Delete the fields, evaluations, mask targets and run record of ``names.prefix``."""
    for k in [k for k in dataset.list_evaluations() if k.startswith(f"{names.prefix}_round_")]:
        dataset.delete_evaluation(k)
    fields = names.owned(dataset.get_field_schema().keys())
    if fields:
        dataset.delete_sample_fields(fields)
    targets = {f: t for f, t in dataset.mask_targets.items() if f not in fields}
    if targets != dict(dataset.mask_targets):
        dataset.mask_targets = targets
        dataset.save()
    dataset.untag_samples(names.dropped_tag)
    runs.delete_run(dataset, names.run_key)


def round_row(info) -> dict[str, Any]:
    """One round of a ``RunResult`` as a JSON-ready row for the stored run and the panel."""
    gt = info.metrics.get("gt") or {}
    lf = info.metrics.get("label_free") or {}
    return {
        "round": info.index,
        "route": info.provenance.get("route"),
        "miou": gt.get("miou"),
        "per_class_iou": gt.get("per_class_iou"),
        "mean_image_iou": gt.get("mean_image_iou"),
        "changed": lf.get("changed"),
        "reliability": lf.get("reliability"),
        "seconds": (info.metrics.get("seconds") or {}).get("total"),
    }


def write_round(dataset, target: convert.Target, names: RunNames, info, run_dir: Path) -> dict[str, Path]:
    """The fields of one finished round (masks, reliability, changed, confidence heatmap); returns the
    round's confidence maps ``{stem: path}`` (written under ``run_dir``)."""
    masks = {p.stem: p for p in sorted(Path(info.masks_dir).glob("*.png"))}
    convert.write_masks_field(dataset, names.round(info.index), masks, target.ids, target.classmap)
    convert.write_float_field(dataset, names.reliability(info.index), info.scores, target.ids)
    changed = info.changed if info.index > 0 else {s: None for s in info.scores}
    convert.write_float_field(dataset, names.changed(info.index), changed, target.ids)
    maps = signals.write_confidence_maps(run_dir, info)
    signals.write_heatmap_field(dataset, names.confidence(info.index), maps, target.ids)
    return maps


def write_best(dataset, target: convert.Target, names: RunNames, result, maps: Mapping[str, Path]) -> None:
    """The best round under the prefix: masks (``final/masks``), reliability and the review signals."""
    best = result.round(result.best_round)
    final = {p.stem: p for p in sorted(Path(result.final_masks_dir).glob("*.png"))}
    convert.write_masks_field(dataset, names.best, final, target.ids, target.classmap)
    convert.write_float_field(dataset, names.best_reliability, best.scores, target.ids)
    signals.write_best_signals(dataset, names, best, target.ids, maps)


def _rebase(result, old: Path, new: Path):
    """``result`` (a ``RunResult`` read in ``old``) with every path moved under ``new``."""

    def move(p: Path | None) -> Path | None:
        return None if p is None else new / Path(p).relative_to(old)

    rounds = [dataclasses.replace(r, masks_dir=move(r.masks_dir), checkpoint=move(r.checkpoint)) for r in result.rounds]
    return dataclasses.replace(result, run_dir=new, rounds=rounds)


def _staging_dirs(run_dir: Path) -> tuple[Path, Path]:
    """``(new, old)``: the folder a replacing run is made in, and where the old run waits for the swap."""
    return run_dir.with_name(f".{run_dir.name}.new"), run_dir.with_name(f".{run_dir.name}.old")


def _swap_in(staging: Path, run_dir: Path, old: Path) -> None:
    """``staging`` becomes ``run_dir``; the previous ``run_dir`` (if any) is moved to ``old`` (deleted by
    the caller once the fields point at the new run). A failed move puts the old run back."""
    if old.exists():
        shutil.rmtree(old)
    had_old = run_dir.exists()
    if had_old:
        run_dir.rename(old)
    try:
        staging.rename(run_dir)
    except BaseException:
        if had_old:
            old.rename(run_dir)
        raise


def auto_label(
    collection,
    *,
    output_prefix: str = "gfn",
    label_field: str | None = None,
    label: str | None = None,
    gt_field: str | None = None,
    config: RunConfig | None = None,
    overwrite: bool = False,
    skip_missing: bool = False,
    runs_dir: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
    fixed_field: str | None = None,
) -> dict[str, Any]:
    """Label the samples of ``collection`` (a dataset or view) at pixel level; see the module docstring.

    ``fixed_field``: a Segmentation field of human-corrected masks (``gfn_fiftyone.review``); the
    samples that have one keep it as a fixed label (``core.refine.fixed``).

    Raises ``ValueError`` naming the fields when outputs of ``output_prefix`` exist and neither
    ``overwrite`` is set nor an unfinished run of that prefix can be resumed, and
    :class:`convert.TargetProblems` listing unusable samples unless ``skip_missing``. With
    ``overwrite``, an existing run is replaced only once the new run succeeded.
    Returns a JSON-ready summary (prefix, run folder, rounds, best round, fields written, skipped).
    """
    from core.refine import rundir
    from core.refine.runner import run_autolabel

    config = config or RunConfig()
    names = RunNames(output_prefix)
    dataset = collection._root_dataset
    record = runs.load_record(dataset, names.run_key) if names.run_key in runs.list_runs(dataset) else None
    resume = bool(record and record.status != runs.COMPLETED and not overwrite)
    existing = existing_outputs(dataset, names)
    if not resume and not overwrite and (record is not None or existing):
        raise ValueError(
            f"output_prefix {output_prefix!r} is taken on dataset '{dataset.name}' "
            f"({'a finished run; ' if record else ''}existing: {existing or [names.run_key]}); "
            f"pass overwrite=True to replace it, or choose another output_prefix"
        )
    run_dir = (
        record.run_dir
        if (resume and record is not None and record.run_dir is not None)
        else default_run_dir(dataset, output_prefix, runs_dir)
    )
    occupied = Path(run_dir).is_dir() and any(Path(run_dir).iterdir())
    if not resume and not overwrite and occupied:
        raise ValueError(
            f"run folder {run_dir} for output_prefix {output_prefix!r} already holds files (from an "
            f"earlier dataset of the same name?); pass overwrite=True, or another runs_dir"
        )
    if record is None and names.run_key in dataset.list_runs():
        raise ValueError(
            f"run key {names.run_key!r} is used by another kind of FiftyOne run on dataset "
            f"'{dataset.name}'; choose another output_prefix"
        )

    target = convert.build_target(
        collection, label_field=label_field, label=label, gt_field=gt_field, skip_missing=skip_missing
    )
    fixed = review.fixed_masks(collection, target, fixed_field) if fixed_field else None
    replacing = overwrite and bool(record is not None or existing or occupied)
    settings = {
        "prefix": output_prefix,
        "run_dir": str(run_dir),
        "label_field": label_field,
        "label": label,
        "gt_field": gt_field,
        "classes": list(target.classmap.names),
        "engine": config.to_dict(),
        "n_samples": len(target.dataset),
        "skipped": sorted(target.skipped)[:100],
        "n_skipped": len(target.skipped),
        "fixed_field": fixed_field,
        "n_fixed": len(fixed or {}),
    }
    log.info(
        "%s run %r on %d samples of '%s' into %s",
        "resuming" if resume else ("replacing" if replacing else "starting"),
        output_prefix,
        len(target.dataset),
        dataset.name,
        run_dir,
    )
    can_resume = resume and (Path(run_dir) / rundir.CONFIG).is_file()
    first = len(rundir.finished_rounds(Path(run_dir))) if can_resume else 0
    tracker = RunProgress(progress, config.rounds, first_round=first)

    if replacing:
        result = _replace_run(collection, target, names, config, Path(run_dir), settings, tracker, fixed)
    else:
        if overwrite:  # nothing of this prefix exists: the same as a new run
            clear_outputs(dataset, names)
        runs.start_run(collection, names.run_key, settings)
        maps: dict[int, dict[str, Path]] = {}

        def on_round(info: RoundInfo) -> None:
            maps[info.index] = write_round(dataset, target, names, info, Path(run_dir))
            tracker.round_finished(info.index)

        try:
            result = run_autolabel(
                target.dataset,
                run_dir,
                config,
                resume=can_resume,
                overwrite=not can_resume,
                progress=tracker,
                on_round=on_round,
                fixed=fixed,
            )
            for info in result.rounds:  # rounds finished by an earlier, interrupted call
                if info.index not in maps:
                    maps[info.index] = write_round(dataset, target, names, info, Path(run_dir))
            write_best(dataset, target, names, result, maps[result.best_round])
        except BaseException as exc:
            runs.set_status(dataset, names.run_key, runs.FAILED, error=f"{type(exc).__name__}: {exc}")
            raise
    return _finish(dataset, names, result, target, Path(run_dir), can_resume, progress)


def _replace_run(collection, target, names: RunNames, config: RunConfig, run_dir: Path, settings, tracker, fixed=None):
    """Run into a staging folder; only when it succeeded swap it in and replace the prefix's fields and run."""
    from core.refine.runner import run_autolabel

    dataset = collection._root_dataset
    staging, old = _staging_dirs(run_dir)
    if staging.exists():  # a replacing run that was killed: ours, never the user's
        shutil.rmtree(staging)
    try:
        result = run_autolabel(
            target.dataset,
            staging,
            config,
            overwrite=True,
            progress=tracker,
            on_round=lambda info: tracker.round_finished(info.index),
            fixed=fixed,
        )
    except BaseException:
        log.error("the new run %r failed; the existing run and its fields are left as they were", names.prefix)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, run_dir, old)
    result = _rebase(result, staging, run_dir)
    clear_outputs(dataset, names)
    runs.start_run(collection, names.run_key, settings)
    maps = {info.index: write_round(dataset, target, names, info, run_dir) for info in result.rounds}
    write_best(dataset, target, names, result, maps[result.best_round])
    shutil.rmtree(old, ignore_errors=True)
    return result


def _finish(dataset, names: RunNames, result, target, run_dir: Path, resumed: bool, progress) -> dict[str, Any]:
    """Store the run's results and status; the JSON-ready summary."""
    rows = [round_row(r) for r in result.rounds]
    fields = names.best_fields() + [f for r in result.rounds for f in names.round_fields(r.index)]
    runs.save_results(
        dataset,
        names.run_key,
        rounds=rows,
        best_round=result.best_round,
        best_round_label_free=result.best_round_label_free,
        best_round_gt=result.best_round_gt,
        stopped_reason=result.stopped_reason,
        fields=fields,
        status=result.status,
        collapsed_rounds={str(r.index): list(v.reasons) for r, v in zip(result.rounds, result.verdicts) if v.collapsed},
    )
    runs.set_status(dataset, names.run_key, runs.COMPLETED, error=None, outcome=result.status)
    warning = result.status_message
    if warning:
        (log.error if result.status == "collapsed" else log.warning)("run %r: %s", names.prefix, warning)
    if progress is not None:
        progress(1.0, f"done: best round {result.best_round}" + (f" ({result.status})" if warning else ""))
    return {
        "prefix": names.prefix,
        "run_dir": str(run_dir),
        "rounds": [r.index for r in result.rounds],
        "best_round": result.best_round,
        "stopped_reason": result.stopped_reason,
        "status": result.status,
        "warning": warning or None,
        "fields": fields,
        "dropped_tag": names.dropped_tag,
        "n_dropped": len(dataset.match_tags(names.dropped_tag)),
        "n_samples": len(target.dataset),
        "skipped": target.skipped_list(),
        "resumed": resumed,
    }
