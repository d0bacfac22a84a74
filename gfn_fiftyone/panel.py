"""The ``gfn_runs`` panel: the dataset's auto-labelling runs, their quality per round, and actions.

Lists every run (status, the collapse guard's outcome, rounds, best round, mIoU), plots mIoU per round
for runs with ground truth (the engine's report or ``evaluate_rounds``) and the fraction of changed pixels per round
for every run (the label-free signal), and offers buttons that open the operators' forms.
"""

from __future__ import annotations

import logging
from typing import Any

import fiftyone.operators as foo
import fiftyone.operators.types as types

from gfn_fiftyone import runs as gfn_runs

log = logging.getLogger(__name__)

PLUGIN = "@gfn-autolabel/gfn"


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def run_summary(record: gfn_runs.RunRecord) -> dict[str, Any]:
    """One table row and the per-round series of a stored run."""
    rounds = sorted(record.rounds, key=lambda r: r["round"])
    xs = [r["round"] for r in rounds]
    evals = record.evaluations
    miou = [(evals.get(str(k)) or {}).get("miou", r.get("miou")) for k, r in zip(xs, rounds)]
    changed = [r.get("changed") for r in rounds]
    best = record.best_round
    best_miou = miou[xs.index(best)] if best in xs else None
    best_rel = rounds[xs.index(best)].get("reliability") if best in xs else None
    settings = record.settings
    return {
        "row": {
            "run": record.key,
            "status": record.status,
            "outcome": record.outcome or "",
            "rounds": len(xs),
            "best_round": _fmt(best, "d"),
            "best_miou": _fmt(best_miou),
            "best_reliability": _fmt(best_rel),
            "samples": settings.get("n_samples"),
            "labels": settings.get("label_field") or settings.get("label") or "",
            "gt": settings.get("gt_field") or "",
        },
        "x": xs,
        "miou": miou,
        "changed": changed,
    }


def worst_masks_field(dataset) -> tuple[str | None, str | None]:
    """``(field, kind)`` to sort the worst masks first by, lowest first: the per-sample IoU of the first
    evaluated run (its best round's, else its last evaluated round's; ``kind="iou"``), else, without
    ground truth, the first run's best-round reliability (``kind="reliability"``); ``(None, None)``
    when no run has either."""
    records = []
    for key in gfn_runs.list_runs(dataset):
        try:
            records.append(gfn_runs.load_record(dataset, key))
        except Exception:
            continue
    for record in records:
        fields = {int(k): v.get("iou_field") for k, v in record.evaluations.items() if v.get("iou_field")}
        fields = {k: f for k, f in fields.items() if dataset.get_field(f) is not None}
        if fields:
            best = fields.get(record.best_round) if record.best_round is not None else None
            return best or fields[max(fields)], "iou"
    for record in records:
        rel = record.names.best_reliability
        if record.status == gfn_runs.COMPLETED and dataset.get_field(rel) is not None:
            return rel, "reliability"
    return None, None


def collect(dataset) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """``(table rows, mIoU traces, changed-fraction traces)`` for every run of ``dataset``."""
    rows, miou_traces, changed_traces = [], [], []
    for key in gfn_runs.list_runs(dataset):
        try:
            s = run_summary(gfn_runs.load_record(dataset, key))
        except Exception as exc:  # a damaged run must not hide the others
            log.warning("cannot read run %r: %s", key, exc)
            continue
        rows.append(s["row"])
        if any(v is not None for v in s["miou"]):
            miou_traces.append({"type": "scatter", "mode": "lines+markers", "name": key, "x": s["x"], "y": s["miou"]})
        if any(v is not None for v in s["changed"]):
            changed_traces.append(
                {"type": "scatter", "mode": "lines+markers", "name": key, "x": s["x"], "y": s["changed"]}
            )
    return rows, miou_traces, changed_traces


def _layout(title: str, ytitle: str) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": "round"}, "dtick": 1},
        "yaxis": {"title": {"text": ytitle}},
        "height": 260,
        "showlegend": True,
        "legend": {"orientation": "h", "y": -0.25},
        "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
    }


def worst_first_view(dataset, field: str):
    """The samples that have ``field``, sorted by it ascending (the worst masks first)."""
    return dataset.exists(field).sort_by(field)


class RunsPanel(foo.Panel):
    """Auto-labelling runs of the current dataset."""

    @property
    def config(self) -> foo.PanelConfig:
        return foo.PanelConfig(
            name="gfn_runs",
            label="GFN auto-labelling runs",
            icon="auto_fix_high",
            help_markdown="Runs of `@gfn-autolabel/gfn/auto_label` on this dataset: quality per round and actions.",
        )

    def on_load(self, ctx) -> None:
        if ctx.dataset is None:
            ctx.panel.state.runs = []
            return
        rows, miou, changed = collect(ctx.dataset)
        ctx.panel.state.runs = rows
        ctx.panel.state.worst_field, ctx.panel.state.worst_by = worst_masks_field(ctx.dataset)
        ctx.panel.state.has_miou = bool(miou)
        ctx.panel.state.has_changed = bool(changed)
        ctx.panel.data.miou_plot = miou
        ctx.panel.data.changed_plot = changed

    def on_change_dataset(self, ctx) -> None:
        self.on_load(ctx)

    def refresh(self, ctx) -> None:
        self.on_load(ctx)

    def show_worst(self, ctx) -> None:
        """Show the samples with a score, the worst first: lowest IoU when evaluated, else lowest reliability."""
        field = ctx.panel.state.worst_field
        if field and ctx.dataset.get_field(field) is not None:
            ctx.ops.set_view(worst_first_view(ctx.dataset, field))

    def render(self, ctx) -> types.Property:
        panel = types.Object()
        rows = ctx.panel.state.runs or []
        panel.md(f"### Auto-labelling runs ({len(rows)})", name="title")
        actions = panel.h_stack("actions", gap=1, align_x="left")
        actions.btn(
            "auto_label",
            label="Auto-label…",
            icon="auto_fix_high",
            variant="contained",
            on_click=f"{PLUGIN}/auto_label",
            prompt=True,
        )
        actions.btn(
            "evaluate",
            label="Evaluate rounds…",
            icon="query_stats",
            variant="outlined",
            on_click=f"{PLUGIN}/evaluate_rounds",
            prompt=True,
            disabled=not rows,
        )
        actions.btn(
            "export",
            label="Export…",
            icon="download",
            variant="outlined",
            on_click=f"{PLUGIN}/export_labels",
            prompt=True,
            disabled=not rows,
        )
        actions.btn(
            "apply",
            label="Apply model…",
            icon="model_training",
            variant="outlined",
            on_click=f"{PLUGIN}/apply_model",
            prompt=True,
            disabled=not rows,
        )
        worst = ctx.panel.state.worst_field
        worst_by = ctx.panel.state.worst_by
        actions.btn(
            "worst",
            label=f"Worst masks first (by {'IoU' if worst_by == 'iou' else 'reliability'})",
            icon="sort",
            variant="outlined",
            on_click=self.show_worst,
            disabled=not worst,
        )
        actions.btn("refresh", label="Refresh", icon="refresh", variant="outlined", on_click=self.refresh)
        if not rows:
            panel.md(
                "No run yet: press **Auto-label…** to label this dataset's images at pixel level "
                "from their image-level labels.",
                name="empty",
            )
        else:
            table = types.TableView()
            for col, label in (
                ("run", "Run"),
                ("status", "Status"),
                ("outcome", "Outcome"),
                ("rounds", "Rounds"),
                ("best_round", "Best round"),
                ("best_miou", "mIoU (best)"),
                ("best_reliability", "Reliability (best)"),
                ("samples", "Samples"),
                ("labels", "Labels"),
                ("gt", "Ground truth"),
            ):
                table.add_column(col, label=label)
            panel.list("runs", types.Object(), view=table, label="Runs")
            if ctx.panel.state.has_miou:
                panel.plot("miou_plot", layout=_layout("mIoU per round", "mIoU"), config={"displayModeBar": False})
            if ctx.panel.state.has_changed:
                panel.plot(
                    "changed_plot",
                    layout=_layout("Changed pixels per round (label-free)", "fraction"),
                    config={"displayModeBar": False},
                )
        return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=2))
