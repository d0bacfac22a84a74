"""An auto-labelling run as a FiftyOne run (``dataset.register_run``), keyed by its output prefix.

The run's *config* holds what was asked (prefix, fields, run folder, engine settings, status); its
*results* hold what came out (one row per round with mIoU / changed fraction / reliability, the
best round, and the evaluations added later by ``evaluate_rounds``). Several runs with different
prefixes live side by side on one dataset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gfn_fiftyone.naming import RUN_METHOD, RunNames

log = logging.getLogger(__name__)

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"


@dataclass
class RunRecord:
    """What the dataset knows about one run (config + results merged)."""

    key: str
    run_dir: Path | None
    status: str
    settings: dict[str, Any]
    rounds: list[dict[str, Any]] = field(default_factory=list)
    best_round: int | None = None
    stopped_reason: str | None = None
    outcome: str | None = None
    """The engine's status of a finished run: ``"ok"``, ``"degraded"`` or ``"collapsed"``
    (``core.refine.collapse``); ``None`` before it finished."""
    evaluations: dict[str, Any] = field(default_factory=dict)
    timestamp: Any = None

    @property
    def names(self) -> RunNames:
        return RunNames(self.key)

    @property
    def folder(self) -> Path:
        """The run folder; ``ValueError`` if the record has none (a run that never started)."""
        if self.run_dir is None:
            raise ValueError(f"run {self.key!r} has no run folder recorded (status {self.status})")
        return self.run_dir

    @property
    def classes(self) -> list[str]:
        return list(self.settings.get("classes") or [])


def list_runs(dataset) -> list[str]:
    """Keys of the auto-labelling runs on ``dataset``."""
    return dataset.list_runs(method=RUN_METHOD)


def start_run(collection, key: str, settings: dict[str, Any]) -> None:
    """Register (or re-register, when resuming) run ``key`` with status ``running``."""
    dataset = collection._root_dataset
    if key in dataset.list_runs() and key not in list_runs(dataset):
        raise ValueError(
            f"run key {key!r} is used by another kind of FiftyOne run on dataset "
            f"'{dataset.name}'; choose another output_prefix"
        )
    config = dataset.init_run(method=RUN_METHOD, status=RUNNING, **settings)
    collection.register_run(key, config, overwrite=True, cleanup=False)


def set_status(dataset, key: str, status: str, **extra: Any) -> None:
    info = dataset.get_run_info(key)
    config = info.config
    config.status = status
    for k, v in extra.items():
        setattr(config, k, v)
    dataset.update_run_config(key, config)


def save_results(dataset, key: str, **results: Any) -> None:
    """Merge ``results`` into the run's stored results."""
    current = results_dict(dataset, key)
    current.update(results)
    res = dataset.init_run_results(key, **current)
    dataset.save_run_results(key, res, overwrite=True, cache=True)


def results_dict(dataset, key: str) -> dict[str, Any]:
    try:
        res = dataset.load_run_results(key, cache=False, load_view=False)
    except Exception:  # no results yet
        return {}
    if res is None:
        return {}
    return {k: v for k, v in vars(res).items() if not k.startswith("_")}


def load_record(dataset, key: str) -> RunRecord:
    """The stored run ``key``; ``ValueError`` listing the runs when there is none."""
    if key not in list_runs(dataset):
        raise ValueError(f"dataset '{dataset.name}' has no auto-labelling run {key!r}; runs: {list_runs(dataset)}")
    info = dataset.get_run_info(key)
    cfg = {k: v for k, v in vars(info.config).items() if not k.startswith("_")}
    res = results_dict(dataset, key)
    run_dir = Path(cfg["run_dir"]) if cfg.get("run_dir") else None
    return RunRecord(
        key=key,
        run_dir=run_dir,
        status=cfg.get("status", "unknown"),
        settings=cfg,
        rounds=list(res.get("rounds") or []),
        best_round=res.get("best_round"),
        stopped_reason=res.get("stopped_reason"),
        outcome=res.get("status"),
        evaluations=dict(res.get("evaluations") or {}),
        timestamp=info.timestamp,
    )


def delete_run(dataset, key: str) -> None:
    if key in dataset.list_runs():
        dataset.delete_run(key)
