"""Human-facing output of a run (for the CLI): the per-round table, and one line per finished round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.refine.runner import RoundInfo, RunResult, round_row


def _fmt(v: Any, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def format_round(info: RoundInfo) -> str:
    """One finished round as a line, e.g. ``round 1 (grabcut): mIoU 0.7012, changed 0.0310, ...``."""
    r = round_row(info)
    return (
        f"round {r['round']} ({r['route']}): mIoU {_fmt(r['miou'])}, img IoU {_fmt(r['mean_image_iou'])}, "
        f"changed {_fmt(r['changed'])}, reliability {_fmt(r['reliability'])}, {_fmt(r['seconds'], '.1f')}s"
    )


def format_table(result: RunResult) -> str:
    """The per-round table: round, route, mIoU, mean image IoU, changed fraction, reliability, seconds,
    best marker (``*`` = the chosen round; ``gt`` / ``lf`` flag the other selection when it differs;
    ``COLLAPSED`` = the collapse guard flagged the round), then the run's choice and, unless it is
    ``"ok"``, its status with the guard's reasons."""
    header = ("round", "route", "mIoU", "img IoU", "changed", "reliab.", "seconds", "best")
    rows = []
    verdicts = dict(zip((r.index for r in result.rounds), result.verdicts))
    for info in result.rounds:
        r = round_row(info, result.best_round)
        marks = []
        if r["best"]:
            marks.append("*")
        if result.best_round_gt == info.index and not r["best"]:
            marks.append("gt")
        if result.best_round_label_free == info.index and not r["best"]:
            marks.append("lf")
        if info.index in verdicts and verdicts[info.index].collapsed:
            marks.append("COLLAPSED")
        rows.append(
            (
                str(r["round"]),
                str(r["route"]),
                _fmt(r["miou"]),
                _fmt(r["mean_image_iou"]),
                _fmt(r["changed"]),
                _fmt(r["reliability"]),
                _fmt(r["seconds"], ".1f"),
                " ".join(marks),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i not in (1, 7) else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    sel = "label-free signal" if result.config.stop.select_by == "label_free" else "ground-truth mIoU"
    out.append(
        f"* best round {result.best_round} by {sel}; stopped: {result.stopped_reason}"
        + (f"; best by ground truth: round {result.best_round_gt}" if result.best_round_gt is not None else "")
        + (
            f"; best label-free: round {result.best_round_label_free}"
            if result.best_round_label_free is not None
            else ""
        )
    )
    for index, v in verdicts.items():
        if v.collapsed:
            out.append(f"COLLAPSED round {index}: {'; '.join(v.reasons)}")
    if result.status != "ok":
        out.append(f"status: {result.status}")
    return "\n".join(out)
