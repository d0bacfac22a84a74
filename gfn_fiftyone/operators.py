"""The plugin's operators: forms (``resolve_input``) and thin ``execute`` methods.

Each ``execute`` reads its parameters and calls one ordinary function (``auto_label``,
``evaluate_rounds``, ``export_labels``, ``apply_model``); the work and the checks live there.
Headless use::

    import fiftyone.operators as foo
    foo.execute_operator("@gfn-autolabel/gfn/auto_label",
                         ctx={"view": dataset.view(), "params": {"label_field": "ground_truth", "rounds": 2}})
"""

from __future__ import annotations

import logging
import os
from typing import Any

import fiftyone.operators as foo
import fiftyone.operators.types as types

from gfn_fiftyone import convert
from gfn_fiftyone import runs as gfn_runs

log = logging.getLogger(__name__)

PLUGIN = "@gfn-autolabel/gfn"
DELEGATE_ABOVE_ENV = "GFN_FIFTYONE_DELEGATE_ABOVE"
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


def _dropdown(
    inputs: types.Object,
    name: str,
    choices: list[str],
    *,
    label: str,
    description: str,
    default: str | None = None,
    required: bool = False,
) -> None:
    """A string parameter offered as a dropdown (validated by the function, which names the choices)."""
    dd = types.DropdownView()
    for c in choices:
        dd.add_choice(c, label=c)
    inputs.str(name, label=label, description=description, default=default, required=required, view=dd)


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
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx) -> bool | None:
        return _resolve_delegation(ctx)

    def resolve_input(self, ctx) -> types.Property:
        from core.network.config import BACKBONES
        from core.refine.config import INIT_ROUTES, RunConfig

        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        view = ctx.target_view(require_flat=True)
        d = RunConfig()
        _dropdown(
            inputs,
            "label_field",
            convert.fields_of_type(ctx.dataset, convert.LABEL_TYPES),
            label="Image-level label field",
            description="Classification or Classifications field giving "
            "each image's class(es). Leave empty and fill 'label' to give every image one class.",
        )
        inputs.str("label", label="One class for all images", description="Used when no label field is chosen")
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
        inputs.str(
            "output_prefix",
            label="Output field prefix",
            default="gfn",
            required=True,
            description="Writes <prefix>_round_<k> per round and the best round as <prefix>",
        )
        _dropdown(
            inputs,
            "gt_field",
            convert.fields_of_type(ctx.dataset, ("Segmentation",)),
            label="Ground truth (optional)",
            description="Segmentation field used only to report mIoU per round",
        )
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
            description="Replace the fields and run of this prefix if they exist",
        )
        inputs.bool(
            "skip_missing",
            label="Skip unusable samples",
            default=False,
            description="Skip samples that are not images, whose file is missing, or that have no label "
            "(otherwise they are listed and nothing runs)",
        )
        inputs.str(
            "runs_dir",
            label="Runs folder (optional)",
            description="Root of the run folders (default: $GFN_FIFTYONE_RUNS_DIR or "
            "<fo.config.default_dataset_dir>/gfn_runs)",
        )
        n = len(view)
        if n > delegate_above():
            inputs.view(
                "delegated_note",
                types.Notice(
                    label=f"{n} samples: this run will be scheduled as a delegated operation "
                    f"(start a worker with `fiftyone delegated launch`)"
                ),
            )
        prefix = ctx.params.get("output_prefix") or "gfn"
        if not ctx.params.get("overwrite") and prefix in _run_choices(ctx):
            status = gfn_runs.load_record(ctx.dataset, prefix).status
            msg = (
                f"Run '{prefix}' is {status}: it will resume from its last finished round"
                if status != gfn_runs.COMPLETED
                else f"Run '{prefix}' exists: tick Overwrite or choose another prefix"
            )
            inputs.view("prefix_note", types.Warning(label=msg))
        return types.Property(inputs, view=types.View(label="GFN auto-labelling"))

    def execute(self, ctx) -> dict[str, Any]:
        from gfn_fiftyone.autolabel import auto_label, make_config

        p = ctx.params
        config = make_config(
            init=p.get("init") or "auto",
            rounds=p.get("rounds", 3),
            backbone=p.get("backbone"),
            engine_options=p.get("engine_options"),
        )
        summary = auto_label(
            ctx.target_view(require_flat=True),
            output_prefix=p.get("output_prefix") or "gfn",
            label_field=p.get("label_field") or None,
            label=p.get("label") or None,
            gt_field=p.get("gt_field") or None,
            config=config,
            overwrite=bool(p.get("overwrite")),
            skip_missing=bool(p.get("skip_missing")),
            runs_dir=p.get("runs_dir") or None,
            progress=_progress(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return summary

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        results = getattr(ctx, "results", None) or {}
        status, warning = results.get("status"), results.get("warning")
        if warning:  # the engine's collapse guard: the run collapsed or kept an earlier round
            kind = types.Error if status == "collapsed" else types.Warning
            outputs.view("status_note", kind(label=f"Run status: {status}", description=warning))
        outputs.str("status", label="Status (ok / degraded / collapsed)")
        outputs.int("best_round", label="Best round")
        outputs.list("rounds", types.Number(), label="Rounds")
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
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        choices = _run_choices(ctx)
        if not choices:
            return _no_runs(inputs)
        _dropdown(
            inputs,
            "output_prefix",
            choices,
            label="Run",
            default=choices[0],
            required=True,
            description="The auto-labelling run (its output prefix)",
        )
        gt = convert.fields_of_type(ctx.dataset, ("Segmentation",))
        _dropdown(
            inputs,
            "gt_field",
            gt,
            label="Ground truth",
            required=True,
            description="Segmentation field to compare every round with",
        )
        inputs.bool(
            "overwrite", label="Overwrite", default=False, description="Replace earlier evaluations of this run"
        )
        return types.Property(inputs, view=types.View(label="Evaluate rounds"))

    def execute(self, ctx) -> dict[str, Any]:
        from gfn_fiftyone.evaluate import evaluate_rounds

        p = ctx.params
        out = evaluate_rounds(
            ctx.dataset,
            p.get("output_prefix") or "gfn",
            p.get("gt_field"),
            overwrite=bool(p.get("overwrite")),
            progress=_progress(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return {"evaluations": out}


class ExportLabels(foo.Operator):
    """A round of a run as COCO JSON (RLE or polygons), a VOC folder or PNG masks."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="export_labels",
            label="GFN: export a round's masks",
            icon="download",
            dynamic=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        from gfn_fiftyone.export import EXPORT_FORMATS

        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        choices = _run_choices(ctx)
        if not choices:
            return _no_runs(inputs)
        _dropdown(
            inputs,
            "output_prefix",
            choices,
            label="Run",
            default=choices[0],
            required=True,
            description="The auto-labelling run (its output prefix)",
        )
        inputs.str("round", label="Round", default="best", description="'best' or a round number")
        _dropdown(
            inputs,
            "format",
            list(EXPORT_FORMATS),
            label="Format",
            default="coco",
            description="coco: one JSON; voc: a VOC folder; png: class-index PNG masks",
        )
        inputs.bool("polygons", label="COCO polygons", default=False, description="Polygons instead of RLE (COCO only)")
        inputs.str(
            "path",
            label="Destination (optional)",
            description="File (COCO) or folder; default: inside the run folder, under export/",
        )
        inputs.bool("overwrite", label="Overwrite", default=False)
        return types.Property(inputs, view=types.View(label="Export labels"))

    def execute(self, ctx) -> dict[str, Any]:
        from gfn_fiftyone.export import export_labels

        p = ctx.params
        return export_labels(
            ctx.dataset,
            p.get("output_prefix") or "gfn",
            round_index=p.get("round", "best"),
            fmt=p.get("format") or "coco",
            dst=p.get("path") or None,
            polygons=bool(p.get("polygons")),
            overwrite=bool(p.get("overwrite")),
        )

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("path", label="Written to")
        outputs.int("round", label="Round")
        outputs.int("n_images", label="Images")
        return types.Property(outputs)


class ApplyModel(foo.Operator):
    """A finished run's network applied to other samples, written as a Segmentation field."""

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="apply_model",
            label="GFN: apply a run's model to samples",
            icon="model_training",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_delegation(self, ctx) -> bool | None:
        return _resolve_delegation(ctx)

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        if ctx.dataset is None:
            return _no_dataset(inputs)
        ctx.target_view(require_flat=True)
        choices = _run_choices(ctx)
        if not choices:
            return _no_runs(inputs)
        _dropdown(
            inputs,
            "output_prefix",
            choices,
            label="Run",
            default=choices[0],
            required=True,
            description="The run whose model to apply",
        )
        inputs.str("round", label="Round", default="best", description="'best' or a round number (>= 1)")
        prefix = ctx.params.get("output_prefix") or choices[0]
        inputs.str("output_field", label="Output field", default=f"{prefix}_applied", required=True)
        _dropdown(
            inputs,
            "label_field",
            convert.fields_of_type(ctx.dataset, convert.LABEL_TYPES),
            label="Image-level labels (optional)",
            description="When given, each mask keeps only the image's own classes",
        )
        inputs.bool("overwrite", label="Overwrite", default=False)
        inputs.bool("skip_missing", label="Skip unusable samples", default=False)
        return types.Property(inputs, view=types.View(label="Apply model"))

    def execute(self, ctx) -> dict[str, Any]:
        from gfn_fiftyone.apply import apply_model

        p = ctx.params
        prefix = p.get("output_prefix") or "gfn"
        view = ctx.target_view(require_flat=True)
        out = apply_model(
            view,
            prefix,
            p.get("output_field") or f"{prefix}_applied",
            round_index=p.get("round", "best"),
            label_field=p.get("label_field") or None,
            overwrite=bool(p.get("overwrite")),
            skip_missing=bool(p.get("skip_missing")),
            progress=_progress(ctx),
        )
        if not ctx.delegated:
            ctx.ops.reload_dataset()
        return out


OPERATORS = (AutoLabel, EvaluateRounds, ExportLabels, ApplyModel)
