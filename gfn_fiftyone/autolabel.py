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
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.refine.config import RunConfig
from gfn_fiftyone import convert, runs
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


def write_round(dataset, target: convert.Target, names: RunNames, info) -> None:
    """The three fields of one finished round."""
    masks = {p.stem: p for p in sorted(Path(info.masks_dir).glob("*.png"))}
    convert.write_masks_field(dataset, names.round(info.index), masks, target.ids, target.classmap)
    convert.write_float_field(dataset, names.reliability(info.index), info.scores, target.ids)
    changed = info.changed if info.index > 0 else {s: None for s in info.scores}
    convert.write_float_field(dataset, names.changed(info.index), changed, target.ids)


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
) -> dict[str, Any]:
    """Label the samples of ``collection`` (a dataset or view) at pixel level; see the module docstring.

    Raises ``ValueError`` naming the fields when outputs of ``output_prefix`` exist and neither
    ``overwrite`` is set nor an unfinished run of that prefix can be resumed, and
    :class:`convert.TargetProblems` listing unusable samples unless ``skip_missing``.
    Returns a JSON-ready summary (prefix, run folder, rounds, best round, fields written, skipped).
    """
    from core.refine import rundir
    from core.refine.runner import run_autolabel

    config = config or RunConfig()
    names = RunNames(output_prefix)
    dataset = collection._root_dataset
    record = runs.load_record(dataset, names.run_key) if names.run_key in runs.list_runs(dataset) else None
    resume = bool(record and record.status != runs.COMPLETED and not overwrite)
    if not resume and not overwrite:
        existing = existing_outputs(dataset, names)
        if record is not None or existing:
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
    if not resume and not overwrite and Path(run_dir).is_dir() and any(Path(run_dir).iterdir()):
        raise ValueError(
            f"run folder {run_dir} for output_prefix {output_prefix!r} already holds files (from an "
            f"earlier dataset of the same name?); pass overwrite=True, or another runs_dir"
        )

    target = convert.build_target(
        collection, label_field=label_field, label=label, gt_field=gt_field, skip_missing=skip_missing
    )
    if overwrite:
        clear_outputs(dataset, names)
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
    }
    runs.start_run(collection, names.run_key, settings)
    log.info(
        "%s run %r on %d samples of '%s' into %s",
        "resuming" if resume else "starting",
        output_prefix,
        len(target.dataset),
        dataset.name,
        run_dir,
    )

    can_resume = resume and (Path(run_dir) / rundir.CONFIG).is_file()
    first = len(rundir.finished_rounds(Path(run_dir))) if can_resume else 0
    tracker = RunProgress(progress, config.rounds, first_round=first)
    written: set[int] = set()

    def on_round(info: RoundInfo) -> None:
        write_round(dataset, target, names, info)
        written.add(info.index)
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
        )
        for info in result.rounds:  # rounds finished by an earlier, interrupted call
            if info.index not in written:
                write_round(dataset, target, names, info)
        best = result.round(result.best_round)
        final = {p.stem: p for p in sorted(result.final_masks_dir.glob("*.png"))}
        convert.write_masks_field(dataset, names.best, final, target.ids, target.classmap)
        convert.write_float_field(dataset, names.best_reliability, best.scores, target.ids)
    except BaseException as exc:
        runs.set_status(dataset, names.run_key, runs.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    rows = [round_row(r) for r in result.rounds]
    fields = [names.best, names.best_reliability] + [f for r in result.rounds for f in names.round_fields(r.index)]
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
        (log.error if result.status == "collapsed" else log.warning)("run %r: %s", output_prefix, warning)
    if progress is not None:
        progress(1.0, f"done: best round {result.best_round}" + (f" ({result.status})" if warning else ""))
    return {
        "prefix": output_prefix,
        "run_dir": str(run_dir),
        "rounds": [r.index for r in result.rounds],
        "best_round": result.best_round,
        "stopped_reason": result.stopped_reason,
        "status": result.status,
        "warning": warning or None,
        "fields": fields,
        "n_samples": len(target.dataset),
        "skipped": target.skipped_list(),
        "resumed": can_resume,
    }
