"""The plugin's operators: forms (``resolve_input``) and thin ``execute`` methods.

Each ``execute`` reads its parameters and calls one ordinary function (``auto_label``,
``evaluate_rounds``, ``export_labels``, ``apply_model``); the work and the checks live there.
The forms run the same checks as the user types and mark the offending input ``invalid`` with the
function's own message, so a bad value is refused before submit (FiftyOne's server refuses it too).

Progress: run from the App and not delegated, every operator streams (``execute_as_generator``):
the work runs in a thread and ``execute`` yields ``set_progress`` messages as it goes, then
``show_output`` with the result (FiftyOne otherwise turns ``ctx.set_progress`` of an immediate run
into log lines). Delegated runs report through ``ctx.set_progress`` (the App's *Runs* page). Called
from Python, ``execute`` returns the result dict as before.

Headless use::

    import fiftyone.operators as foo
    foo.execute_operator("@gfn-autolabel/gfn/auto_label",
                         ctx={"view": dataset.view(), "params": {"label_field": "ground_truth", "rounds": 2}})
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fiftyone.operators as foo
import fiftyone.operators.types as types

from gfn_fiftyone import convert
from gfn_fiftyone import runs as gfn_runs

log = logging.getLogger(__name__)

PLUGIN = "@gfn-autolabel/gfn"
DELEGATE_ABOVE_ENV = "GFN_FIFTYONE_DELEGATE_ABOVE"
SEGMENTATION = ("Segmentation",)
TAKEN_HINT = "tick Overwrite (overwrite=True) or choose another prefix"
DEFAULT_DELEGATE_ABOVE = 100
"""Targets with more samples than this are run as delegated operations (background)."""


def delegate_above() -> int:
    """Sample count above which ``auto_label``/``apply_model`` are delegated (``$GFN_FIFTYONE_DELEGATE_ABOVE``)."""
    raw = os.environ.get(DELEGATE_ABOVE_ENV, "")
    try:
        return int(raw) if raw else DEFAULT_DELEGATE_ABOVE
    except ValueError:
        log.warning("%s=%r is not an integer; using %d", DELEGATE_ABOVE_ENV, raw, DEFAULT_DELEGATE_ABOVE)
        return DEFAULT_DELEGATE_ABOVE


def _resolve_delegation(ctx) -> bool | None:
    """``params["delegate"]`` when given; else delegate large targets, and let the user choose otherwise."""
    forced = ctx.params.get("delegate")
    if forced is not None:
        return bool(forced)
    try:
        n = len(ctx.target_view(require_flat=True))
    except Exception:  # no dataset yet (e.g. the operator browser before a dataset is loaded)
        return None
    return True if n > delegate_above() else None


def _progress(ctx):
    def report(fraction: float, label: str) -> None:
        ctx.set_progress(progress=fraction, label=label)

    return report


Work = Callable[[Callable[[float, str], None]], dict[str, Any]]
"""The operator's ordinary function with its parameters bound: ``work(progress) -> result``."""


def streams(ctx) -> bool:
    """Whether this execution streams messages to the App: an immediate run requested by the App
    (its requests name the operator; ``execute_operator`` from Python does not)."""
    return not ctx.delegated and bool(ctx.request_params.get("operator_uri"))


def run_work(ctx, work: Work, outputs: Callable[[dict[str, Any]], types.Property], reload: bool = True):
    """Run ``work``: streamed to the App (a generator of messages, see the module docstring), or
    directly with ``ctx.set_progress`` (delegated, Python) returning its result."""
    if not streams(ctx):
        result = work(_progress(ctx))
        if reload and not ctx.delegated:
            ctx.ops.reload_dataset()
        return result
    return _stream(ctx, work, outputs, reload)


_DONE = object()


def _stream(ctx, work: Work, outputs, reload: bool) -> Iterator[Any]:
    """``work`` in a thread; yields ``set_progress`` per report, then ``reload_dataset`` and ``show_output``;
    on failure a ``notify`` with the error, then the error is raised (FiftyOne logs it)."""
    events: queue.Queue = queue.Queue()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work(lambda fraction, label: events.put((fraction, label)))
        except BaseException as exc:  # handed to the generator, raised there
            box["error"] = exc
        finally:
            events.put(_DONE)

    threading.Thread(target=target, name=f"gfn-{ctx.operator_uri}", daemon=True).start()
    yield ctx.ops.set_progress(label="starting", progress=0.0)
    while (item := events.get()) is not _DONE:
        fraction, label = item
        yield ctx.ops.set_progress(label=label, progress=float(fraction))
    if "error" in box:
        exc = box["error"]
        yield ctx.ops.set_progress(label=f"failed: {exc}", progress=1.0)
        yield ctx.ops.notify(f"{type(exc).__name__}: {exc}", variant="error")
        raise exc
    result = box["result"]
    if reload:
        yield ctx.ops.reload_dataset()
    yield ctx.ops.show_output(outputs(result).to_json(), result)


def _problem(check: Callable[[], Any]) -> str | None:
    """The message of the ``ValueError`` ``check()`` raises, else ``None`` (form validation)."""
    try:
        check()
    except ValueError as exc:
        return str(exc)
    return None


def _mark(prop: types.Property, message: str | None) -> None:
    """Mark a form input invalid with ``message`` (nothing when ``message`` is ``None``)."""
    if message:
        prop.invalid = True
        prop.error_message = message


def _dropdown(
    inputs: types.Object,
    name: str,
    choices: list[str],
    *,
    label: str,
    description: str,
    default: str | None = None,
    required: bool = False,
) -> types.Property:
    """A string parameter offered as a dropdown (validated by the function, which names the choices)."""
    dd = types.DropdownView()
    for c in choices:
        dd.add_choice(c, label=c)
    return inputs.str(name, label=label, description=description, default=default, required=required, view=dd)


def _run_choices(ctx) -> list[str]:
    return gfn_runs.list_runs(ctx.dataset) if ctx.dataset is not None else []


def _no_dataset(inputs: types.Object) -> types.Property:
    inputs.view("no_dataset", types.Warning(label="Load a dataset first"))
    return types.Property(inputs)


def _no_runs(inputs: types.Object) -> types.Property:
    inputs.view(
        "no_runs",
        types.Warning(
            label="This dataset has no auto-labelling run yet", description=f"Run {PLUGIN}/auto_label first."
        ),
    )
    return types.Property(inputs)


class AutoLabel(foo.Operator):
    """Pixel-level masks for the target samples from their image-level labels, round by round."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="auto_label",
            label="GFN: auto-label masks from image-level labels",
            description="Initial masks, then Guided Filter Network refinement rounds; one Segmentation "
            "field per round and the best round under the prefix",
            icon="auto_fix_high",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx) -> bool | None:
        return _resolve_delegation(ctx)

    def resolve_input(self, ctx) -> types.Property:
        from core.network.config import BACKBONES
        from core.refine.config import INIT_ROUTES, RunConfig
        from gfn_fiftyone.autolabel import existing_outputs
        from gfn_fiftyone.naming import RunNames, check_prefix

        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        inputs.view_target(ctx, action_description="Label", require_flat=True)
        view = ctx.target_view(require_flat=True)
        d = RunConfig()
        p = ctx.params
        label_field, label = p.get("label_field") or None, p.get("label") or None
        label_prop = _dropdown(
            inputs,
            "label_field",
            convert.fields_of_type(ctx.dataset, convert.LABEL_TYPES),
            label="Image-level label field",
            description="Classification or Classifications field giving "
            "each image's class(es). Leave empty and fill 'label' to give every image one class.",
        )
        one_prop = inputs.str(
            "label", label="One class for all images", description="Used when no label field is chosen"
        )
        if label_field and label:
            _mark(one_prop, f"give either a label field ({label_field!r}) or one class ({label!r}), not both")
        elif label_field:
            _mark(
                label_prop,
                _problem(lambda: convert.require_field(ctx.dataset, label_field, convert.LABEL_TYPES, "label_field")),
            )
        elif not label:
            _mark(label_prop, "choose a Classification / Classifications field, or fill 'One class for all images'")
        _dropdown(
            inputs,
            "init",
            list(INIT_ROUTES),
            label="Initial masks (round 0)",
            default=d.init.route,
            description="auto picks per image; otsu / grabcut / cam / transfer force one route",
        )
        inputs.int(
            "rounds",
            label="Refinement rounds",
            default=d.rounds,
            min=0,
            max=20,
            description="Maximum rounds after round 0 (the run may stop earlier when masks converge)",
        )
        prefix = p.get("output_prefix") or "gfn"
        prefix_prop = inputs.str(
            "output_prefix",
            label="Output field prefix",
            default="gfn",
            required=True,
            description="Writes <prefix>_round_<k> per round and the best round as <prefix>",
        )
        gt_field = p.get("gt_field") or None
        gt_prop = _dropdown(
            inputs,
            "gt_field",
            convert.fields_of_type(ctx.dataset, ("Segmentation",)),
            label="Ground truth (optional)",
            description="Segmentation field used only to report mIoU per round",
        )
        if gt_field:
            _mark(gt_prop, _problem(lambda: convert.require_field(ctx.dataset, gt_field, SEGMENTATION, "gt_field")))
        _dropdown(
            inputs,
            "backbone",
            list(BACKBONES),
            label="Backbone",
            default=d.network.backbone,
            description="Network of the refinement rounds",
        )
        inputs.bool(
            "overwrite",
            label="Overwrite",
            default=False,
            description="Replace the fields and run of this prefix (only once the new run has succeeded)",
        )
        inputs.bool(
            "skip_missing",
            label="Skip unusable samples",
            default=False,
            description="Skip samples that are not images, whose file is missing, or that have no label "
            "(otherwise they are listed and nothing runs)",
        )
        runs_dir = p.get("runs_dir") or None
        runs_prop = inputs.str(
            "runs_dir",
            label="Runs folder (optional)",
            description="Root of the run folders (default: $GFN_FIFTYONE_RUNS_DIR or "
            "<fo.config.default_dataset_dir>/gfn_runs)",
        )
        if runs_dir and Path(runs_dir).expanduser().exists() and not Path(runs_dir).expanduser().is_dir():
            _mark(runs_prop, f"runs_dir {runs_dir} is a file; give a folder")
        n = len(view)
        if n > delegate_above():
            inputs.view(
                "delegated_note",
                types.Notice(
                    label=f"{n} samples: this run will be scheduled as a delegated operation "
                    f"(start a worker with `fiftyone delegated launch`)"
                ),
            )
        _dropdown(  # gfn_fiftyone.review: human-corrected masks kept as fixed labels
            inputs,
            "fixed_field",
            convert.fields_of_type(ctx.dataset, SEGMENTATION),
            label="Human-corrected masks (fixed labels)",
            description="Optional Segmentation field (e.g. human_masks from Label Studio): never re-labelled",
        )
        bad_prefix = _problem(lambda: check_prefix(prefix))
        _mark(prefix_prop, bad_prefix)
        if bad_prefix is None and not p.get("overwrite"):
            if prefix in _run_choices(ctx):
                status = gfn_runs.load_record(ctx.dataset, prefix).status
                if status != gfn_runs.COMPLETED:
                    msg = f"Run '{prefix}' is {status}: it will resume from its last finished round"
                    inputs.view("prefix_note", types.Warning(label=msg))
                else:
                    _mark(prefix_prop, f"run '{prefix}' exists: {TAKEN_HINT}")
            else:
                taken = existing_outputs(ctx.dataset, RunNames(prefix))
                if taken:
                    _mark(prefix_prop, f"fields {taken[:3]} exist: {TAKEN_HINT}")
        return types.Property(inputs, view=types.View(label="GFN auto-labelling"))

    def execute(self, ctx):
        from gfn_fiftyone.autolabel import auto_label, make_config

        p = ctx.params
        config = make_config(
            init=p.get("init") or "auto",
            rounds=p.get("rounds", 3),
            backbone=p.get("backbone"),
            engine_options=p.get("engine_options"),
        )
        view = ctx.target_view(require_flat=True)

        def work(progress) -> dict[str, Any]:
            return auto_label(
                view,
                output_prefix=p.get("output_prefix") or "gfn",
                label_field=p.get("label_field") or None,
                label=p.get("label") or None,
                gt_field=p.get("gt_field") or None,
                config=config,
                overwrite=bool(p.get("overwrite")),
                skip_missing=bool(p.get("skip_missing")),
                runs_dir=p.get("runs_dir") or None,
                progress=progress,
                fixed_field=p.get("fixed_field") or None,
            )

        return run_work(ctx, work, auto_label_outputs)

    def resolve_output(self, ctx) -> types.Property:
        return auto_label_outputs(getattr(ctx, "results", None) or {})


def auto_label_outputs(results: dict[str, Any]) -> types.Property:
    """The result view of ``auto_label`` (status note when the run collapsed or kept an earlier round)."""
    outputs = types.Object()
    status, warning = results.get("status"), results.get("warning")
    if warning:  # the engine's collapse guard: the run collapsed or kept an earlier round
        kind = types.Error if status == "collapsed" else types.Warning
        outputs.view("status_note", kind(label=f"Run status: {status}", description=warning))
    outputs.str("status", label="Status (ok / degraded / collapsed)")
    outputs.int("best_round", label="Best round")
    outputs.list("rounds", types.Number(), label="Rounds")
    outputs.int("n_dropped", label="Samples tagged as dropped by the filters")
    outputs.str("run_dir", label="Run folder")
    outputs.list("fields", types.String(), label="Fields written")
    title = "Auto-labelling finished" if not warning else f"Auto-labelling finished: {status}"
    return types.Property(outputs, view=types.View(label=title))


class EvaluateRounds(foo.Operator):
    """Every round of a run against a ground-truth Segmentation field."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="evaluate_rounds",
            label="GFN: evaluate the rounds of a run",
            icon="query_stats",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        from gfn_fiftyone.evaluate import existing_evaluations

        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        choices = _run_choices(ctx)
        if not choices:
            return _no_runs(inputs)
        p = ctx.params
        prefix = p.get("output_prefix") or choices[0]
        run_prop = _dropdown(
            inputs,
            "output_prefix",
            choices,
            label="Run",
            default=choices[0],
            required=True,
            description="The auto-labelling run (its output prefix)",
        )
        if prefix not in choices:
            _mark(run_prop, f"dataset '{ctx.dataset.name}' has no auto-labelling run {prefix!r}; runs: {choices}")
        gt = convert.fields_of_type(ctx.dataset, ("Segmentation",))
        gt_field = p.get("gt_field") or None
        gt_prop = _dropdown(
            inputs,
            "gt_field",
            gt,
            label="Ground truth",
            required=True,
            description="Segmentation field to compare every round with",
        )
        if gt_field:
            _mark(gt_prop, _problem(lambda: convert.require_field(ctx.dataset, gt_field, SEGMENTATION, "gt_field")))
        over_prop = inputs.bool(
            "overwrite", label="Overwrite", default=False, description="Replace earlier evaluations of this run"
        )
        if prefix in choices and not p.get("overwrite"):
            taken = existing_evaluations(ctx.dataset, prefix)
            if taken:
                _mark(over_prop, f"evaluations of run {prefix!r} exist ({taken[:3]}); tick Overwrite (overwrite=True)")
        return types.Property(inputs, view=types.View(label="Evaluate rounds"))

    def execute(self, ctx):
        from gfn_fiftyone.evaluate import evaluate_rounds

        p = ctx.params

        def work(progress) -> dict[str, Any]:
            out = evaluate_rounds(
                ctx.dataset,
                p.get("output_prefix") or "gfn",
                p.get("gt_field"),
                overwrite=bool(p.get("overwrite")),
                progress=progress,
            )
            return {"evaluations": out}

        return run_work(ctx, work, evaluate_outputs)


def evaluate_outputs(results: dict[str, Any]) -> types.Property:
    outputs = types.Object()
    rows = {k: round(v["miou"], 4) for k, v in (results.get("evaluations") or {}).items() if v.get("miou") is not None}
    outputs.view("miou", types.Notice(label=f"mIoU per round: {rows}"))
    return types.Property(outputs, view=types.View(label="Rounds evaluated"))


class ExportLabels(foo.Operator):
    """A Segmentation field of the current view (a run's round by default) as PNG masks, COCO or VOC."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="export_labels",
            label="GFN: export masks of the current view",
            icon="download",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        from gfn_fiftyone.export import EXPORT_FORMATS, default_destination, field_classmap, field_of_round

        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        inputs.view_target(ctx, action_description="Export", require_flat=True)
        choices = _run_choices(ctx)
        p = ctx.params
        seg_fields = convert.fields_of_type(ctx.dataset, ("Segmentation",))
        prefix = p.get("output_prefix") or (choices[0] if choices else None)
        field = p.get("field") or None
        run_prop = _dropdown(
            inputs,
            "output_prefix",
            choices,
            label="Run",
            default=choices[0] if choices else None,
            description="The auto-labelling run whose round to export (or choose a field below)",
        )
        round_prop = inputs.str("round", label="Round", default="best", description="'best' or a round number")
        field_prop = _dropdown(
            inputs,
            "field",
            seg_fields,
            label="Field (optional)",
            description="Any Segmentation field instead of a run's round (e.g. masks corrected in the App)",
        )
        _dropdown(
            inputs,
            "format",
            list(EXPORT_FORMATS),
            label="Format",
            default="coco",
            description="coco: one JSON (RLE, or polygons through FiftyOne's COCO exporter); voc: a VOC "
            "folder; png: FiftyOne's ImageSegmentationDirectory",
        )
        fmt = p.get("format") or "coco"
        poly_prop = inputs.bool(
            "polygons", label="COCO polygons", default=False, description="Polygons instead of RLE (COCO only)"
        )
        if p.get("polygons") and fmt != "coco":
            _mark(poly_prop, f"polygons apply to the coco format only, not to {fmt!r}")
        inputs.bool(
            "export_media", label="Copy the images (png)", default=True, description="png only: images into data/"
        )
        path = p.get("path") or None
        path_prop = inputs.str(
            "path",
            label="Destination (optional)",
            description="File (COCO) or folder; default: inside the run folder, under export/",
        )
        inputs.bool("overwrite", label="Overwrite", default=False)
        resolved: str | None = None
        if field:
            problem = _problem(lambda: convert.require_field(ctx.dataset, field, ("Segmentation",), "field"))
            _mark(field_prop, problem or _problem(lambda: field_classmap(ctx.dataset, field)))
            resolved = None if problem else field
        elif not prefix:
            _mark(field_prop, "this dataset has no auto-labelling run: choose a Segmentation field to export")
        elif prefix not in choices:
            _mark(run_prop, f"dataset '{ctx.dataset.name}' has no auto-labelling run {prefix!r}; runs: {choices}")
        else:
            problem = _problem(lambda: field_of_round(ctx.dataset, prefix, p.get("round", "best")))
            _mark(round_prop, problem)
            resolved = None if problem else field_of_round(ctx.dataset, prefix, p.get("round", "best"))
        dst = Path(path).expanduser() if path else None
        if dst is None and resolved and prefix in choices:
            record = gfn_runs.load_record(ctx.dataset, prefix)
            if record.run_dir is not None:
                dst = default_destination(record.run_dir, fmt, resolved, bool(p.get("polygons")))
        if not path and not prefix:
            _mark(path_prop, "give a destination (there is no run folder to export into)")
        elif dst is not None and dst.exists() and not p.get("overwrite"):
            _mark(path_prop, f"{dst} already exists; tick Overwrite (overwrite=True) or choose another destination")
        if resolved:
            n = len(ctx.target_view(require_flat=True).exists(resolved))
            inputs.view("what", types.Notice(label=f"{n} sample(s) of the target have masks in '{resolved}'"))
        return types.Property(inputs, view=types.View(label="Export labels"))

    def execute(self, ctx):
        from gfn_fiftyone.export import export_labels

        p = ctx.params
        view = ctx.target_view(require_flat=True)
        runs_here = _run_choices(ctx)

        def work(progress) -> dict[str, Any]:
            prefix = p.get("output_prefix") or (runs_here[0] if runs_here and not p.get("field") else None)
            return export_labels(
                view,
                prefix,
                field=p.get("field") or None,
                round_index=p.get("round", "best"),
                fmt=p.get("format") or "coco",
                dst=p.get("path") or None,
                polygons=bool(p.get("polygons")),
                export_media=bool(p.get("export_media", True)),
                overwrite=bool(p.get("overwrite")),
                progress=progress,
            )

        return run_work(ctx, work, export_outputs, reload=False)

    def resolve_output(self, ctx) -> types.Property:
        return export_outputs(getattr(ctx, "results", None) or {})


def export_outputs(results: dict[str, Any]) -> types.Property:
    outputs = types.Object()
    outputs.str("path", label="Written to")
    outputs.str("field", label="Field")
    outputs.int("n_images", label="Images")
    outputs.str("exporter", label="Exporter")
    return types.Property(outputs, view=types.View(label="Export finished"))


class ApplyModel(foo.Operator):
    """A finished run's network applied to other samples, written as a Segmentation field."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="apply_model",
            label="GFN: apply a run's model to samples",
            icon="model_training",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx) -> bool | None:
        return _resolve_delegation(ctx)

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        choices = _run_choices(ctx)
        if not choices:
            return _no_runs(inputs)
        inputs.view_target(ctx, action_description="Label", require_flat=True)
        p = ctx.params
        prefix = p.get("output_prefix") or choices[0]
        run_prop = _dropdown(
            inputs,
            "output_prefix",
            choices,
            label="Run",
            default=choices[0],
            required=True,
            description="The run whose model to apply",
        )
        if prefix not in choices:
            _mark(run_prop, f"dataset '{ctx.dataset.name}' has no auto-labelling run {prefix!r}; runs: {choices}")
        inputs.str("round", label="Round", default="best", description="'best' or a round number (>= 1)")
        out_field = p.get("output_field") or f"{prefix}_applied"
        out_prop = inputs.str("output_field", label="Output field", default=f"{prefix}_applied", required=True)
        if not out_field.isidentifier():
            _mark(out_prop, f"output_field {out_field!r} must be a valid field name (letters, digits, underscores)")
        elif not p.get("overwrite"):
            taken = [f for f in (out_field, f"{out_field}_reliability") if ctx.dataset.get_field(f) is not None]
            if taken:
                _mark(out_prop, f"field(s) {taken} exist: tick Overwrite (overwrite=True) or choose another field")
        label_field = p.get("label_field") or None
        label_prop = _dropdown(
            inputs,
            "label_field",
            convert.fields_of_type(ctx.dataset, convert.LABEL_TYPES),
            label="Image-level labels (optional)",
            description="When given, each mask keeps only the image's own classes",
        )
        if label_field:
            _mark(
                label_prop,
                _problem(lambda: convert.require_field(ctx.dataset, label_field, convert.LABEL_TYPES, "label_field")),
            )
        inputs.bool("overwrite", label="Overwrite", default=False)
        inputs.bool("skip_missing", label="Skip unusable samples", default=False)
        return types.Property(inputs, view=types.View(label="Apply model"))

    def execute(self, ctx):
        from gfn_fiftyone.apply import apply_model

        p = ctx.params
        prefix = p.get("output_prefix") or "gfn"
        view = ctx.target_view(require_flat=True)

        def work(progress) -> dict[str, Any]:
            return apply_model(
                view,
                prefix,
                p.get("output_field") or f"{prefix}_applied",
                round_index=p.get("round", "best"),
                label_field=p.get("label_field") or None,
                overwrite=bool(p.get("overwrite")),
                skip_missing=bool(p.get("skip_missing")),
                progress=progress,
            )

        return run_work(ctx, work, apply_outputs)


def apply_outputs(results: dict[str, Any]) -> types.Property:
    outputs = types.Object()
    outputs.str("field", label="Field written")
    outputs.int("round", label="Round of the model")
    outputs.int("n_images", label="Images")
    return types.Property(outputs, view=types.View(label="Model applied"))


OPERATORS = (AutoLabel, EvaluateRounds, ExportLabels, ApplyModel)
