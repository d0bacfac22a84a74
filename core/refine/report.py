"""Human-facing output of a run: the per-round table, one line per finished round, and the pictures
of any finished run (``write_report``: overlays and the per-round plot, with or without ground truth)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.data.dataset import Dataset
from core.refine.collapse import Verdict
from core.refine.runner import RoundInfo, RunResult, load_run, round_row

log = logging.getLogger(__name__)

REPORT_INDEX = "report.json"
OVERLAY_LIMIT = 12
"""Overlays written by default: the least reliable masks of the kept round first."""


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


@dataclass(frozen=True, kw_only=True)
class Report:
    """What ``write_report`` wrote: the folder, the plot, the overlays (least reliable first) and
    whether the plot compares with ground truth (``with_gt``) or shows the label-free signals."""

    folder: Path
    plot: Path
    overlays: tuple[Path, ...]
    with_gt: bool
    rows: tuple[dict[str, Any], ...]


def with_gt_folder(dataset: Dataset, gt: str | os.PathLike) -> Dataset:
    """``dataset`` with ground truth ``<gt>/<stem>.png`` attached where it exists (class indices of the
    dataset's class map; checked: ``core.data.checks.check_gt_masks``). ``ValueError`` when the
    folder holds none of the run's images' masks."""
    from core.data.checks import check_gt_masks

    folder = Path(gt)
    if not folder.is_dir():
        raise FileNotFoundError(f"ground-truth folder {folder} does not exist")
    samples = [
        replace(s, mask_path=folder / f"{s.stem}.png", mask_fn=None) if (folder / f"{s.stem}.png").is_file() else s
        for s in dataset
    ]
    found = sum(1 for s, t in zip(dataset, samples) if t.mask_path is not None and t.mask_path.parent == folder)
    if not found:
        raise ValueError(f"{folder}: none of the run's {len(dataset)} images has a mask <stem>.png there")
    out = dataset.with_samples(samples)
    check_gt_masks(out)
    return out


def signal_rows(run: RunResult) -> list[dict[str, Any]]:
    """Per round: ``round``, ``reliability``, ``mean_area`` (mean foreground fraction), ``kept``
    (fraction of masks kept by the filters for the next round), ``collapsed``, ``reasons``, ``best``."""
    rows = []
    verdicts: list[Verdict | None] = list(run.verdicts) or [None] * len(run.rounds)
    for info, v in zip(run.rounds, verdicts):
        lf = info.metrics.get("label_free", {})
        n = len(info.details) or int(info.metrics.get("n_images") or 0)
        kept = lf.get("train_next")
        rows.append(
            {
                "round": info.index,
                "route": info.provenance.get("route"),
                "reliability": lf.get("reliability"),
                "mean_area": info.signals().mean_area() if info.details else None,
                "kept": (kept / n) if (kept is not None and n) else None,
                "collapsed": bool(v is not None and v.collapsed),
                "reasons": list(v.reasons) if v is not None else [],
                "best": info.index == run.best_round,
            }
        )
    return rows


def _replace_folder(staged: Path, out: Path) -> None:
    if not out.exists():
        os.replace(staged, out)
        return
    aside = out.parent / f".{out.name}.replaced"
    if aside.exists():
        shutil.rmtree(aside)
    os.replace(out, aside)
    os.replace(staged, out)
    shutil.rmtree(aside, ignore_errors=True)


def write_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    gt: str | os.PathLike | None = None,
    limit: int | None = OVERLAY_LIMIT,
    max_side: int | None = 512,
) -> Report:
    """Write the overlays and the per-round plot of a finished (or interrupted) run.

    ``out``: default ``RUN_DIR/report``; an existing ``out`` is replaced as a whole, and only when it
    is a report folder (holds ``report.json``) or empty. ``gt``: a folder of ground-truth masks
    ``<stem>.png``; without it the ground truth the run was given (if any) is used. With ground
    truth, ``quality.png`` plots mIoU / mean image IoU / reliability per round; without, it plots
    the label-free signals (``signal_rows``). ``overlays/<stem>.png``: the kept round's mask tinted
    over the picture (| ground truth), for the ``limit`` least reliable images (``None``: all),
    shrunk to ``max_side``. ``report.json`` lists the rows and the overlays. The folder is built
    beside ``out`` and swapped in complete.
    """
    from core.refine.evaluate import evaluate_round
    from core.refine.rundir import REPORT, write_json
    from core.refine.visualise import plot_rounds, plot_signals, write_overlays

    run = load_run(Path(run_dir))
    dataset = run.dataset
    if gt is not None:
        dataset = with_gt_folder(dataset, gt)
    folder = Path(out) if out is not None else Path(run_dir) / REPORT
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / REPORT_INDEX).is_file())):
        raise FileExistsError(f"{folder} exists and is not a report folder (no {REPORT_INDEX}); choose another --out")
    verdicts: list[Verdict | None] = list(run.verdicts) or [None] * len(run.rounds)
    with_gt = len(dataset.with_gt()) > 0
    signals = signal_rows(run)
    rows: list[dict[str, Any]] = []
    for info, v, sig in zip(run.rounds, verdicts, signals):
        row = {**round_row(info, run.best_round, v), **sig}
        if gt is not None:
            scores = evaluate_round(dataset, info.masks_dir) or {}
            row.update(miou=scores.get("miou"), mean_image_iou=scores.get("mean_image_iou"))
        rows.append(row)
    kept = run.round(run.best_round)
    order = sorted(dataset, key=lambda s: (kept.scores.get(s.stem, 1.0), s.stem))
    folder.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        overlays = write_overlays(
            order,
            kept.masks_dir,
            staged / "overlays",
            limit=limit,
            max_side=max_side,
            image_max_side=run.config.post.image_max_side,  # huge pictures decoded at reduced size
        )
        title = f"{Path(run_dir).name}: " + ("quality per round" if with_gt else "label-free signals per round")
        if with_gt:
            plot_rounds(rows, staged / "quality.png", title=title)
        else:
            plot_signals(rows, staged / "quality.png", title=title)
        index = {
            "run": str(Path(run_dir).resolve()),
            "best_round": run.best_round,
            "status": run.status,
            "with_gt": with_gt,
            "rounds": rows,
            "overlays": [{"stem": p.stem, "reliability": kept.scores.get(p.stem)} for p in overlays],
        }
        write_json(staged / REPORT_INDEX, index)
        _replace_folder(staged, folder)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    log.info("report of %s written to %s (%d overlays)", run_dir, folder, len(overlays))
    return Report(
        folder=folder,
        plot=folder / "quality.png",
        overlays=tuple(folder / "overlays" / p.name for p in overlays),
        with_gt=with_gt,
        rows=tuple(rows),
    )
