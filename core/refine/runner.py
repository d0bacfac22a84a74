"""``run_autolabel``: round 0 then refinement rounds into a run folder; ``load_run`` reads one back.

Round r's files are written first and its ``DONE`` marker last, so an interrupted run resumes
from its last finished round (``resume=True``) and gives the same final masks as an uninterrupted
run. After every round the collapse guard (``core.refine.collapse``) and the stopping rule
(``core.refine.stopping``) look at the recorded signals: a collapsed round is never kept and stops
the run. The best round's masks are copied to ``final/masks`` and ``run.json`` is written last,
with every round's verdict and the run's ``status`` (``"ok"``, ``"degraded"``, ``"collapsed"``).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import __version__, memory
from core.classmap import ClassMap
from core.data.dataset import Dataset
from core.io.atomic import atomic_path
from core.progress import Progress
from core.refine import collapse, rundir, stopping
from core.refine import fixed as fixed_labels
from core.refine import records as rec
from core.refine.config import RunConfig
from core.refine.evaluate import evaluate_round
from core.threads import torch_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RoundInfo:
    """One finished round as recorded in its folder.

    ``scores``/``changed``: per-image reliability and fraction of pixels changed against the
    previous round (round 0: 1.0). ``metrics``: ``metrics.json`` (``gt`` = ground-truth scores or
    ``None``, ``label_free``, ``seconds``). ``provenance``: route, round, model version.
    ``details``: the full per-image records (area ratio, filters' verdicts, reliability parts).
    """

    index: int
    masks_dir: Path
    scores: dict[str, float]
    changed: dict[str, float]
    metrics: dict[str, Any]
    checkpoint: Path | None
    provenance: dict[str, Any]
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def miou(self) -> float | None:
        gt = self.metrics.get("gt")
        return None if not gt else gt.get("miou")

    @property
    def reliability(self) -> float | None:
        return self.metrics.get("label_free", {}).get("reliability")

    def signals(self) -> collapse.RoundSignals:
        """What the collapse guard reads of this round (round 0 is not a network round)."""
        lf = self.metrics.get("label_free", {})
        areas = {s: float(r["area_ratio"]) for s, r in self.details.items()}
        return collapse.RoundSignals(
            areas=areas, reliability=lf.get("reliability"), margin=lf.get("margin"), network=self.index > 0
        )


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """A run folder's state. ``best_round`` follows ``config.stop.select_by``; ``best_round_label_free``
    and ``best_round_gt`` (``None`` without ground truth) are both recorded. ``verdicts``: the collapse
    guard's verdict on every round (aligned with ``rounds``); ``status``: ``"ok"``, ``"degraded"`` (a round
    collapsed, an earlier one was kept) or ``"collapsed"`` (the kept masks are mostly empty)."""

    run_dir: Path
    config: RunConfig
    classmap: ClassMap
    rounds: list[RoundInfo]
    best_round: int
    stopped_reason: str
    best_round_label_free: int | None = None
    best_round_gt: int | None = None
    verdicts: tuple[collapse.Verdict, ...] = ()
    status: str = collapse.OK

    @property
    def status_message(self) -> str:
        """One line about a status other than ``"ok"`` (else "")."""
        kept = self.round(self.best_round).signals()
        return collapse.status_message(self.status, self.best_round, self.verdicts, kept.empty_fraction())

    @property
    def final_masks_dir(self) -> Path:
        return self.run_dir / rundir.FINAL / "masks"

    def masks(self, round_index: int | None = None) -> dict[str, Path]:
        """``{stem: mask path}`` of a round (default: the final masks = the best round's)."""
        folder = self.final_masks_dir if round_index is None else self.round(round_index).masks_dir
        return {p.stem: p for p in sorted(folder.glob("*.png"))}

    def round(self, index: int) -> RoundInfo:
        for r in self.rounds:
            if r.index == index:
                return r
        raise ValueError(f"run {self.run_dir} has no finished round {index}; rounds: {[r.index for r in self.rounds]}")

    @property
    def dataset(self) -> Dataset:
        """The images the run labelled (from ``dataset.json``)."""
        return rundir.dataset_from_dict(rundir.read_json(self.run_dir / rundir.DATASET))


def _check_dataset(dataset: Dataset) -> None:
    if len(dataset) == 0:
        raise ValueError("the dataset holds no images; nothing to label")
    for s in dataset:
        rec.label_indices(s, dataset)
    from core.data.checks import check_gt_masks

    check_gt_masks(dataset)  # sizes and class indices, before anything is written


def _signals(infos: list[RoundInfo]) -> tuple[list[float | None], list[float | None], list[float | None]]:
    """Per round: label-free signal (None for round 0), gt mIoU (None without gt), mean changed fraction."""
    lf = [None if r.index == 0 else r.reliability for r in infos]
    gt = [r.miou for r in infos]
    ch = [r.metrics.get("label_free", {}).get("changed") for r in infos]
    return lf, gt, ch


def guard(infos: list[RoundInfo], config: RunConfig) -> list[collapse.Verdict]:
    """The collapse guard's verdict on every round so far (round 0 is the reference)."""
    return collapse.check_rounds([r.signals() for r in infos], collapse.Limits.from_stop(config.stop))


def decide(infos: list[RoundInfo], config: RunConfig) -> tuple[str | None, int, int | None, int | None]:
    """``(stop reason or None, best round, best label-free, best gt)`` from the rounds so far.

    A round the guard flags (``guard``) is never a candidate, and when the last round is flagged the
    run stops (``"collapsed"``). Round 0 is a candidate of the label-free choice: its reliability is not
    computed like a network round's, so it is not compared by that number; a refined round displaces
    it only when the guard, comparing the two on signals computed alike for every round (images
    emptied, mean foreground area) and checking that the network is decided, does not flag it. The
    highest reliability among those rounds wins; without any, round 0 is kept.
    """
    verdicts = guard(infos, config) if config.stop.collapse_guard else [collapse.Verdict()] * len(infos)
    lf, gt, ch = _signals(infos)
    lf = [None if v.collapsed else x for x, v in zip(lf, verdicts, strict=True)]
    gt = [None if v.collapsed else x for x, v in zip(gt, verdicts, strict=True)]
    best_lf = stopping.pick_best(lf)
    best_lf = infos[0].index if best_lf is None else best_lf
    best_gt = stopping.pick_best(gt)
    stop = config.stop
    if verdicts[-1].collapsed:
        reason: str | None = stopping.STOP_COLLAPSED
        best = best_gt if (stop.select_by == "gt" and best_gt is not None) else best_lf
    elif stop.select_by == "gt" and best_gt is not None:
        reason = stopping.stop_reason(gt, min_gain=stop.min_gain, patience=stop.patience, max_rounds=config.rounds)
        best = best_gt
    else:
        if stop.select_by == "gt":
            log.warning("select_by='gt' but no image has ground truth; using the label-free signal")
        reason = stopping.stop_reason(
            lf,
            min_gain=stop.min_gain,
            patience=stop.patience,
            max_rounds=config.rounds,
            changed=ch,
            converged_change=stop.converged_change,
        )
        best = best_lf
    return reason, best, best_lf, best_gt


def run_autolabel(
    dataset: Dataset,
    out_dir: str | Path,
    config: RunConfig = RunConfig(),
    *,
    source: Dataset | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: Progress | None = None,
    on_round: Callable[[RoundInfo], None] | None = None,
    fixed: Mapping[str, fixed_labels.MaskSource] | None = None,
) -> RunResult:
    """Label every image of ``dataset`` at pixel level from its image-level labels.

    ``fixed``: human-corrected masks ``{stem: PNG path or (H, W) uint8 array}`` kept as fixed labels
    (``core.refine.fixed``: never re-labelled nor filtered out, weighted ``train.fixed_weight`` in
    training; the final masks of those images are these).

    ``source``: a labelled dataset of a similar class for the transfer route. ``progress(stage,
    done, total)`` is called per step of every stage. ``on_round(info)`` is called with the
    ``RoundInfo`` of each round this call finishes, once its folder is complete on disk (rounds
    finished before a resume are not reported again; they are in ``RunResult.rounds``).
    With ``overwrite`` an existing run is replaced only when the new one finished (it is built beside
    it). Raises ``OutputExistsError`` if ``out_dir`` holds files and neither ``resume`` nor
    ``overwrite`` is set, ``ValueError`` on a config differing from the saved one when resuming
    (naming the keys) and on images without a label.
    """
    from core.refine.initial_round import run_initial_round
    from core.refine.refine_round import run_refine_round

    if not isinstance(config, RunConfig):
        raise TypeError(f"config must be a RunConfig, got {type(config).__name__}")
    _check_dataset(dataset)
    if overwrite and not resume and rundir.holds_files(out_dir):
        # the new run is built beside the old one, which is replaced only once the new one finished:
        # a re-run that fails (bad input, an error in a round, Ctrl-C) leaves the old run as it was
        with rundir.replacing(out_dir) as stage:
            run_autolabel(dataset, stage, config, source=source, progress=progress, on_round=on_round, fixed=fixed)
        return load_run(Path(out_dir))
    if config.max_side is not None and config.train.crop_size < config.max_side:
        log.warning(
            "crop_size %d is smaller than max_side %d: each round's network trains on crops and then "
            "labels whole images of up to %d px, a scale it has not seen (on ecssd this cost 0.19 mIoU); "
            "set crop_size >= max_side",
            config.train.crop_size,
            config.max_side,
            config.max_side,
        )
    run_dir = Path(out_dir)
    checked = fixed_labels.before_start(run_dir, dataset, fixed, resume=resume)  # before anything is written
    start = rundir.prepare(run_dir, config, dataset, resume=resume, overwrite=overwrite)
    fixed_masks = fixed_labels.prepare(run_dir, checked, fresh=start == 0)
    infos = [read_round(run_dir, r) for r in range(start)]
    reason = decide(infos, config)[0] if infos else None
    with torch_threads(config.num_threads):
        index = start
        while reason is None:
            path = rundir.round_dir(run_dir, index)
            if path.exists():
                shutil.rmtree(path)
            t0 = time.perf_counter()
            if index == 0:
                out = run_initial_round(dataset, path, config, source=source, progress=progress)
            else:
                out = run_refine_round(dataset, run_dir, index, config, progress=progress, source=source)
            fixed_labels.override_round(path, out["records"], out["provenance"], fixed_masks, config)
            seconds = {**out["seconds"], "total": time.perf_counter() - t0}
            metrics = {
                "round": index,
                "gt": evaluate_round(dataset, path / "masks"),
                "label_free": rec.summarise(out["records"]),
                "seconds": seconds,
                "n_images": len(dataset),
            }
            rundir.write_json(path / "metrics.json", metrics)
            memory.release()  # what the round freed goes back to the system before the next one
            rundir.mark_done(run_dir, index)
            infos.append(read_round(run_dir, index))
            _log_round(infos[-1])
            if on_round is not None:
                on_round(infos[-1])
            reason = decide(infos, config)[0]
            if reason == stopping.STOP_COLLAPSED:
                log.warning(
                    "round %d COLLAPSED (%s): it is not kept and the run stops",
                    index,
                    "; ".join(guard(infos, config)[-1].reasons),
                )
            index += 1
    return _finalise(run_dir, config, dataset, infos, reason)


def _finalise(run_dir: Path, config: RunConfig, dataset: Dataset, infos: list[RoundInfo], reason: str) -> RunResult:
    _, best, best_lf, best_gt = decide(infos, config)
    verdicts = guard(infos, config)
    status = collapse.run_status(infos[best].signals(), verdicts, collapse.Limits.from_stop(config.stop))
    final = run_dir / rundir.FINAL
    if final.exists():
        shutil.rmtree(final)
    (final / "masks").mkdir(parents=True)
    for src in sorted(infos[best].masks_dir.glob("*.png")):
        with atomic_path(final / "masks" / src.name) as tmp:
            shutil.copyfile(src, tmp)
    summary = {
        "engine": __version__,
        "finished": True,
        "rounds_done": [r.index for r in infos],
        "best_round": best,
        "select_by": config.stop.select_by,
        "decided_by": "gt" if (config.stop.select_by == "gt" and best_gt is not None) else "label_free",
        "best_round_label_free": best_lf,
        "best_round_gt": best_gt,
        "stopped_reason": reason,
        "status": status,
        "classes": list(dataset.classmap.names),
        "n_images": len(dataset),
        "rounds": [round_row(r, best, v) for r, v in zip(infos, verdicts, strict=True)],
        "note": (
            "best_round follows select_by; the label-free choice never looks at ground truth, the gt "
            "choice is recorded for reporting"
        ),
    }
    rundir.write_json(final / "run.json", summary)
    rundir.write_json(run_dir / rundir.RUN, summary)
    log.info("run %s: best round %d (%s), stopped: %s", run_dir, best, config.stop.select_by, reason)
    result = RunResult(
        run_dir=run_dir,
        config=config,
        classmap=dataset.classmap,
        rounds=infos,
        best_round=best,
        stopped_reason=reason,
        best_round_label_free=best_lf,
        best_round_gt=best_gt,
        verdicts=tuple(verdicts),
        status=status,
    )
    if status != collapse.OK:
        log.warning("run %s: status %s: %s", run_dir, status.upper(), result.status_message)
    return result


def round_row(info: RoundInfo, best: int | None = None, verdict: collapse.Verdict | None = None) -> dict[str, Any]:
    """One line of the per-round table (with ``verdict``: the guard's ``collapsed`` and ``reasons``)."""
    gt = info.metrics.get("gt") or {}
    lf = info.metrics.get("label_free", {})
    row = {
        "round": info.index,
        "route": info.provenance.get("route"),
        "miou": gt.get("miou"),
        "mean_image_iou": gt.get("mean_image_iou"),
        "changed": lf.get("changed"),
        "reliability": lf.get("reliability"),
        "seconds": info.metrics.get("seconds", {}).get("total"),
        "best": info.index == best,
    }
    if verdict is not None:
        row.update(collapsed=verdict.collapsed, reasons=list(verdict.reasons), guard=verdict.numbers)
    return row


def read_round(run_dir: Path, index: int) -> RoundInfo:
    """A finished round from its folder (``ValueError`` if it is not finished)."""
    path = rundir.round_dir(run_dir, index)
    if not rundir.is_done(run_dir, index):
        raise ValueError(f"{path} is not a finished round (no {rundir.DONE} marker)")
    records, provenance = rec.read_scores(path)
    ckpt = path / "model.pt"
    return RoundInfo(
        index=index,
        masks_dir=path / "masks",
        scores={s: r.score for s, r in records.items()},
        changed={s: (1.0 if r.changed is None else r.changed) for s, r in records.items()},
        metrics=rundir.read_json(path / "metrics.json"),
        checkpoint=ckpt if ckpt.is_file() else None,
        provenance=provenance,
        details={s: vars(r) for s, r in records.items()},
    )


def load_run(run_dir: str | Path) -> RunResult:
    """Read a run folder. A run that was interrupted (no ``run.json``) is read as far as it got, with
    ``stopped_reason="interrupted"`` and the best round chosen from the finished rounds."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    config = RunConfig.from_dict(rundir.read_json(run_dir / rundir.CONFIG))
    dataset = rundir.dataset_from_dict(rundir.read_json(run_dir / rundir.DATASET))
    done = rundir.finished_rounds(run_dir)
    if not done:
        raise ValueError(f"run folder {run_dir} has no finished round yet")
    infos = [read_round(run_dir, r) for r in done]
    run_json = run_dir / rundir.RUN
    if run_json.is_file():
        s = rundir.read_json(run_json)
        best, reason = int(s["best_round"]), s["stopped_reason"]
        best_lf, best_gt = s.get("best_round_label_free"), s.get("best_round_gt")
    else:
        s, reason = {}, "interrupted"
        _, best, best_lf, best_gt = decide(infos, config)
    verdicts = guard(infos, config)
    status = s.get("status") or collapse.run_status(
        infos[best].signals(), verdicts, collapse.Limits.from_stop(config.stop)
    )  # run.json written before the guard existed: the status its kept round would get
    return RunResult(
        run_dir=run_dir,
        config=config,
        classmap=dataset.classmap,
        rounds=infos,
        best_round=best,
        stopped_reason=reason,
        best_round_label_free=best_lf,
        best_round_gt=best_gt,
        verdicts=tuple(verdicts),
        status=status,
    )


def _log_round(info: RoundInfo) -> None:
    row = round_row(info)
    log.info(
        "round %d (%s): mIoU %s, changed %.4f, reliability %.4f, %.1fs",
        row["round"],
        row["route"],
        "-" if row["miou"] is None else f"{row['miou']:.4f}",
        row["changed"] or 0.0,
        row["reliability"] or 0.0,
        row["seconds"] or 0.0,
    )
