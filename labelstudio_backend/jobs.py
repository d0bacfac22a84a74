"""Background refinement rounds: the webhook answers at once, training runs in a worker thread.

A round trains the GFN on every human mask plus the current pseudo-labels of the other tasks
(those whose reliability is at least ``PSEUDO_MIN_SCORE``), saves the model under
``MODEL_DIR/<project>/models/<version>/``, re-labels the other tasks with it (their new
pseudo-labels feed the next round) and then switches ``current.json`` to the new version, which
every worker process picks up on its next request. A cross-process lock keeps one round per
project at a time.

Before anything is published the engine's collapse guard (``core.refine.collapse``, the same check
the run loop makes) compares the new model's labels with the published pseudo-labels of the same
tasks. A collapsed version (the objects gone from many masks, the foreground area jumping, the
reliability falling) is refused: its pseudo-labels are not saved, ``current.json`` keeps the
previous version, the checkpoint is deleted and the job ends with ``job_status: "collapsed"`` and
the guard's reasons.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import traceback
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from core.classmap import ClassMap
from labelstudio_backend.engine import Engine
from labelstudio_backend.fetch import FetchError, ImageFetcher
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ProjectStore, check_id

log = logging.getLogger(__name__)


class CollapsedVersion(Exception):
    """A trained model version the collapse guard refused to publish (``verdict``: its reasons)."""

    def __init__(self, version: str, verdict: Any):
        self.version = version
        self.verdict = verdict
        super().__init__(f"model version {version} collapsed and was not published: {'; '.join(verdict.reasons)}")


def job_project(job_id: str) -> str:
    """The project id encoded in a job id (``<project>-<hex>``)."""
    project, sep, _ = str(job_id).rpartition("-")
    if not sep:
        raise ValueError(f"unknown job id {job_id!r}")
    return check_id(project, "project")


class TrainingJobs:
    """One background thread per process running refinement rounds in submission order."""

    def __init__(self, settings: BackendSettings, engine: Engine, fetcher: ImageFetcher):
        self.settings = settings
        self.engine = engine
        self.fetcher = fetcher
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gfn-train")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, project_id: str, reason: str) -> str:
        store = ProjectStore(self.settings.model_dir, project_id)
        job_id = f"{store.project_id}-{uuid.uuid4().hex[:12]}"
        store.write_job(job_id, job_status="queued", reason=reason, queued_at=time.time())
        with self._lock:
            self._futures[job_id] = self._pool.submit(self._run, store, job_id)
        log.info("project %s: training job %s queued (%s)", store.project_id, job_id, reason)
        return job_id

    def status(self, job_id: str) -> dict[str, Any] | None:
        store = ProjectStore(self.settings.model_dir, job_project(job_id))
        return store.read_job(job_id)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for every job submitted so far (tests, shutdown)."""
        with self._lock:
            futures = list(self._futures.values())
        for f in futures:
            f.result(timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one round -----------------------------------------------------------------------------
    def _run(self, store: ProjectStore, job_id: str) -> None:
        with store.training_lock() as acquired:
            if not acquired:
                store.write_job(job_id, job_status="skipped", reason="another worker is training this project")
                log.info("project %s: job %s skipped, a round is already running", store.project_id, job_id)
                return
            store.write_job(job_id, job_status="started", started_at=time.time())
            try:
                info = self.run_round(store, job_id)
            except CollapsedVersion as exc:
                log.error("project %s: training job %s: %s", store.project_id, job_id, exc)
                store.write_job(
                    job_id,
                    job_status="collapsed",
                    error=str(exc),
                    rejected_version=exc.version,
                    reasons=list(exc.verdict.reasons),
                    guard=exc.verdict.to_dict()["numbers"],
                    finished_at=time.time(),
                )
                return
            except Exception as exc:  # reported in the job status, never kills the worker
                log.error(
                    "project %s: training job %s failed: %s\n%s", store.project_id, job_id, exc, traceback.format_exc()
                )
                store.write_job(job_id, job_status="failed", error=str(exc), finished_at=time.time())
                return
            store.write_job(job_id, job_status="finished", finished_at=time.time(), **info)

    def run_round(self, store: ProjectStore, job_id: str) -> dict[str, Any]:
        classmap = store.load_classes()
        if classmap is None:
            raise ValueError(f"project {store.project_id} has no class map yet (no /setup or /predict received)")
        store.take_pending()  # annotations arriving from now on count towards the next round
        human = store.human_ids()
        pairs: list[tuple[Path, np.ndarray]] = []
        for tid in human:
            path = self._image(store, tid)
            if path is not None:
                pairs.append((path, store.load_human(tid, classmap)))
        n_human = len(pairs)
        n_pseudo = 0
        for tid in store.pseudo_ids():
            if tid in human:
                continue
            got = store.load_pseudo(tid, classmap)
            path = store.image_path(tid)
            if got is None or path is None or got[1] < self.settings.pseudo_min_score:
                continue
            pairs.append((path, self.engine.pseudo_training_label(got[0])))
            n_pseudo += 1
        if not pairs:
            raise ValueError("nothing to train on yet: submit annotations or request predictions first")
        previous = store.current()
        round_index = len(store.versions()) + 1
        version = f"gfn-{round_index:03d}-{time.strftime('%Y%m%d-%H%M%S')}"
        log.info(
            "project %s: round %d on %d human masks + %d pseudo-labels -> %s",
            store.project_id,
            round_index,
            n_human,
            n_pseudo,
            version,
        )
        out = store.new_model_path(version)
        outcome = self.engine.train(
            pairs,
            classmap,
            out_path=out,
            warm_start=previous.checkpoint if previous else None,
            n_human=n_human,
            round_index=round_index,
            progress=lambda stage, done, total: (
                store.write_job(job_id, progress=f"{stage} {done}/{total}") if done == total or done % 10 == 0 else None
            ),
        )
        refreshed = self._refresh_pseudo(store, out, classmap, version, set(human))
        store.set_current(
            version,
            out,
            classmap.names,
            trained_at=time.time(),
            n_human=n_human,
            n_pseudo=n_pseudo,
            seconds=round(outcome.seconds, 2),
            epochs=outcome.epochs,
            final_loss=outcome.final_loss,
        )
        log.info(
            "project %s: serving %s (trained %.1fs, %d pseudo-labels refreshed)",
            store.project_id,
            version,
            outcome.seconds,
            refreshed,
        )
        return {
            "model_version": version,
            "n_human": n_human,
            "n_pseudo": n_pseudo,
            "seconds": round(outcome.seconds, 2),
            "refreshed": refreshed,
        }

    def _image(self, store: ProjectStore, tid: str) -> Path | None:
        path = store.image_path(tid)
        if path is not None:
            return path
        data = store.load_task(tid)
        if not data:
            log.warning("project %s task %s: human mask without a known image; left out", store.project_id, tid)
            return None
        from labelstudio_backend.label_config import parse_label_config

        key = parse_label_config(store.load_label_config()).image_key
        try:
            fetched = self.fetcher.fetch(data.get(key, ""))
            path, _ = store.save_image(
                tid,
                fetched.data,
                fetched.suffix,
                max_pixels=self.settings.max_image_pixels,
                max_images=self.settings.max_cached_images,
                max_image_bytes=self.settings.max_cached_image_bytes,
            )
        except (FetchError, ValueError) as exc:
            log.warning(
                "project %s task %s: image not available for training (%s); left out", store.project_id, tid, exc
            )
            return None
        return path

    def _refresh_pseudo(
        self, store: ProjectStore, checkpoint: Path, classmap: ClassMap, version: str, human: set[str]
    ) -> int:
        """New pseudo-labels for the tasks without a human mask, with the new model."""
        images = {t: p for t in store.pseudo_ids() if t not in human and (p := store.image_path(t)) is not None}
        tids = list(images)
        if not tids:
            return 0
        keys = self.settings.label_keys
        labels = []
        for t in tids:
            names = store.task_labels(t)  # what the task was labelled with when predicted (<Choices> or data)
            if names is None:
                data = store.load_task(t) or {}
                raw = next((data[k] for k in keys if data.get(k) not in (None, "", [])), None)
                names = [str(v) for v in raw] if isinstance(raw, list) else ([str(raw)] if raw is not None else None)
            labels.append([n for n in names if n in classmap.names] if names else None)
        results = self.engine.label_many(checkpoint, [images[t] for t in tids], labels)
        verdict = self._guard(store, classmap, dict(zip(tids, results)))
        if verdict.collapsed:
            shutil.rmtree(Path(checkpoint).parent, ignore_errors=True)
            raise CollapsedVersion(version, verdict)
        for t, (mask, score) in zip(tids, results):
            store.save_pseudo(t, mask, score, version, classmap)
        return len(tids)

    def _guard(self, store: ProjectStore, classmap: ClassMap, new: dict[str, tuple[np.ndarray, float]]):
        """The collapse guard's verdict on the new labels against the published pseudo-labels of the same
        tasks (reliabilities compared only when those came from a trained version too)."""
        from core.refine import collapse

        stop = self.engine.run_config().stop
        if not stop.collapse_guard:
            return collapse.Verdict()
        old = {t: got for t in new if (got := store.load_pseudo(t, classmap)) is not None}
        reference = collapse.RoundSignals.from_masks(
            {t: m for t, (m, _) in old.items()},
            {t: s for t, (_, s) in old.items()},
            network=store.current() is not None,
        )
        candidate = collapse.RoundSignals.from_masks(
            {t: new[t][0] for t in old},
            {t: new[t][1] for t in old},
            network=True,
        )
        return collapse.check_round(candidate, reference, collapse.Limits.from_stop(stop))
