"""``GFNSegmenter``: the backend's model class, shaped like label-studio-ml's ``LabelStudioMLBase``.

One instance per request and project (as in label-studio-ml): ``setup()``, ``predict(tasks,
context)`` -> ``{"predictions": [...], "model_version": ...}``, ``fit(event, data)`` and
``model_version``. It translates Label Studio objects into engine calls (:mod:`.engine`) and back
(:mod:`.controls`); it holds no labelling logic of its own.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from core.classmap import ClassMap
from labelstudio_backend.engine import Engine
from labelstudio_backend.fetch import FetchError, ImageFetcher
from labelstudio_backend.label_config import ConfigError, LabelConfig, check_model_classes, parse_label_config
from labelstudio_backend.prompts import parse_prompt
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ImageTooLarge, ProjectStore, check_id

log = logging.getLogger(__name__)

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
DELETE_EVENTS = ("ANNOTATION_DELETED", "ANNOTATIONS_DELETED")
TRAIN_EVENTS = ("START_TRAINING",)


class TaskError(ValueError):
    """One task could not be predicted; ``status`` is the HTTP status it maps to."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class Services:
    """What every :class:`GFNSegmenter` of a process shares."""

    settings: BackendSettings
    engine: Engine
    fetcher: ImageFetcher
    jobs: Any = None  # labelstudio_backend.jobs.TrainingJobs (set by the app)
    compute: contextlib.AbstractContextManager[Any] = field(default_factory=contextlib.nullcontext)
    """Held around every model computation (a semaphore of ``PREDICT_CONCURRENCY``): image fetches run
    freely in the request threads, the network runs at most that many times at once."""


def compute_slots(n: int) -> threading.BoundedSemaphore:
    """The semaphore bounding concurrent model computations of one worker."""
    return threading.BoundedSemaphore(max(1, int(n)))


class GFNSegmenter:
    """The ML backend model of one Label Studio project."""

    def __init__(self, project_id: Any, label_config: str | None, services: Services):
        self.services = services
        self.settings = services.settings
        self.store = ProjectStore(self.settings.model_dir, project_id)
        self.project_id = self.store.project_id
        xml = label_config or self.store.load_label_config()
        if not xml:
            raise ConfigError(
                f"project {self.project_id}: no labelling config received yet; connect the backend "
                f"in Label Studio (Settings > Model) so that it calls /setup"
            )
        self.label_config_xml = xml
        self.config: LabelConfig = parse_label_config(xml)

    # -- LabelStudioMLBase-like surface -----------------------------------------------------------
    @property
    def model_version(self) -> str:
        return self.store.model_version()

    @property
    def classmap(self) -> ClassMap:
        return self.config.classmap

    def setup(self) -> dict[str, Any]:
        """Check the config against the served model and remember it; returns ``{"model_version"}``."""
        cur = self.store.current()
        if cur is not None:
            check_model_classes(cur.classes, self.config)
        self.store.save_label_config(self.label_config_xml)
        self.store.save_classes(self.classmap)
        log.info(
            "project %s: %s %r -> classes %s, model %s",
            self.project_id,
            self.config.control.tag,
            self.config.control.from_name,
            list(self.classmap.foreground),
            self.model_version,
        )
        return {"model_version": self.model_version}

    def predict(
        self, tasks: Sequence[Mapping[str, Any]], context: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """One prediction per task: ``{"result": [...], "score", "model_version"}``.

        A task that fails gets an empty prediction with an ``error`` field, unless every task
        failed: then :class:`TaskError` (or :class:`FetchError`) is raised for the first one.
        """
        if not isinstance(tasks, (list, tuple)) or not tasks:
            raise TaskError("request has no tasks (expected a non-empty list under 'tasks')")
        self.store.save_label_config(self.label_config_xml)
        self.store.save_classes(self.classmap)
        version = self.model_version
        predictions: list[dict[str, Any]] = []
        errors: list[Exception] = []
        for task in tasks:
            try:
                predictions.append(self._predict_task(task, context, version))
            except (ValueError, FetchError) as exc:  # TaskError, ImageTooLarge, ConfigError, bad prompt numbers
                errors.append(exc)
                log.warning("project %s task %s: %s", self.project_id, _safe_task_id(task), exc)
                predictions.append(
                    {
                        "result": [],
                        "score": 0.0,
                        "model_version": version,
                        "error": str(exc),
                        "meta": {"why_empty": str(exc)},
                    }
                )
        if errors and len(errors) == len(tasks):
            raise errors[0]
        return {"predictions": predictions, "model_version": version}

    def fit(self, event: str, data: Mapping[str, Any], *, auto_train: bool = True, **kwargs: Any) -> dict[str, Any]:
        """Store human masks from annotation events; start a refinement round when due
        (``START_TRAINING``, or ``TRAIN_EVERY`` new annotations unless ``auto_train`` is false).

        Returns what was done: ``stored``/``deleted`` task ids and the training ``job`` (or None).
        """
        stored: list[str] = []
        deleted: list[str] = []
        if event in ANNOTATION_EVENTS:
            for annotation, task in annotation_pairs(data):
                tid = self._store_annotation(annotation, task)
                if tid is not None:
                    stored.append(tid)
        elif event in DELETE_EVENTS:
            deleted = self._delete_annotations(data)
        elif event not in TRAIN_EVENTS:
            return {"status": "ignored", "event": event}
        job = None
        if event in TRAIN_EVENTS:
            job = self.start_training(reason=event)
        elif stored and auto_train:
            pending = self.store.bump_pending(len(stored))
            every = self.settings.train_every
            if every and pending >= every:
                self.store.take_pending()  # the next annotations count towards the round after this one
                job = self.start_training(reason=f"{pending} new annotations (TRAIN_EVERY={every})")
        return {"status": "ok", "event": event, "stored": stored, "deleted": deleted, "job": job}

    def start_training(self, reason: str) -> str:
        """Queue one refinement round in the background; returns the job id."""
        if self.services.jobs is None:
            raise RuntimeError("no background job runner configured")
        self.store.save_label_config(self.label_config_xml)
        self.store.save_classes(self.classmap)
        return self.services.jobs.submit(self.project_id, reason)

    # -- prediction of one task -------------------------------------------------------------------
    def _predict_task(self, task: Mapping[str, Any], context: Mapping[str, Any] | None, version: str) -> dict[str, Any]:
        tid = _task_id(task)
        data = task.get("data")
        if not isinstance(data, Mapping):
            raise TaskError(f"task {tid}: 'data' must be an object with the image under {self.config.image_key!r}")
        labels, source = self._task_labels(task)
        parse_prompt(context, self.classmap, width=1, height=1)  # a malformed prompt is refused before any fetch
        image = self._task_image(tid, data, labels)
        h, w = image.shape[:2]
        prompt = parse_prompt(context, self.classmap, width=w, height=h)
        cmap = self.classmap
        engine = self.services.engine
        if not prompt.empty:
            name = prompt.class_name or (labels[0] if labels else None) or self._only_class()
            if name is None:
                raise TaskError(
                    f"task {tid}: which class does the prompt mark? Use a keypoint/rectangle label named after a "
                    f"class {list(cmap.foreground)}, or give the task an image-level label "
                    f"({self._label_sources()})"
                )
            with self.services.compute:
                mask, score = engine.initial(image, cmap.index(name), cmap.num_classes, prompt=prompt)
            return self._prediction(mask, score, version, tid, labels=[name])
        cur = self.store.current()
        if cur is not None:
            check_model_classes(cur.classes, self.config)
        if cur is not None and labels and not any(n in cur.classes for n in labels):
            log.info(
                "project %s task %s: label(s) %s unknown to model %s: initial route",
                self.project_id,
                tid,
                labels,
                cur.model_version,
            )
            cur = None
        if cur is not None:
            known = [n for n in labels if n in cur.classes] if labels else None
            with self.services.compute:
                mask, score, model_cmap = engine.label(cur.checkpoint, image, known)
            mask = _to_config_indices(mask, model_cmap, cmap)
            version = cur.model_version
        else:
            name = (labels[0] if labels else None) or self._only_class()
            if name is None:
                why = (
                    f"no image-level label for this task and no trained model yet: give it a label "
                    f"({self._label_sources()}), or train a model"
                )
                log.info("project %s task %s: empty prediction: %s", self.project_id, tid, why)
                return {"result": [], "score": 0.0, "model_version": version, "meta": {"why_empty": why}}
            with self.services.compute:
                mask, score = engine.initial(image, cmap.index(name), cmap.num_classes)
        if labels:
            keep = np.isin(mask, [cmap.index(n) for n in labels])
            mask = np.where(keep, mask, 0).astype(np.uint8)
        self.store.save_pseudo(tid, mask, score, version, cmap)
        if labels and source:
            log.debug("project %s task %s: labels %s from %s", self.project_id, tid, labels, source)
        return self._prediction(mask, score, version, tid, labels=labels)

    def _label_sources(self) -> str:
        """Where image-level labels are read from, for messages."""
        where = [f"task data key {'/'.join(self.settings.label_keys)}"]
        if self.config.choices:
            where.insert(0, "a choice in <Choices name=" + "/".join(repr(c.name) for c in self.config.choices) + ">")
        return " or ".join(where)

    def _prediction(
        self, mask: np.ndarray, score: float, version: str, tid: str, *, labels: Sequence[str] | None = None
    ) -> dict[str, Any]:
        results = self.config.control.to_results(mask, self.classmap.names, score)
        out: dict[str, Any] = {"result": results, "score": float(score), "model_version": version}
        if not results:
            looked_for = f" {list(labels)}" if labels else ""
            found = bool(((mask > 0) & (mask != 255)).any())
            why = (
                f"the {self.config.control.tag} regions of the mask were too small to encode"
                if found
                else f"model {version} found no object{looked_for} in the image"
            )
            log.info("project %s task %s: empty prediction: %s", self.project_id, tid, why)
            out["meta"] = {"why_empty": why}
        return out

    def _only_class(self) -> str | None:
        fg = self.classmap.foreground
        return fg[0] if len(fg) == 1 else None

    def _task_image(self, tid: str, data: Mapping[str, Any], labels: Sequence[str] | None = None) -> np.ndarray:
        key = self.config.image_key
        if key not in data:
            raise TaskError(
                f'task {tid}: data has no {key!r} (the <Image value="${key}"> of the config); '
                f"task data keys: {sorted(str(k) for k in data)}"
            )
        value = data[key]
        if not isinstance(value, str):
            raise TaskError(
                f"task {tid}: data[{key!r}] must be a string (an image URL or path), got {type(value).__name__}"
            )
        fetched = self.services.fetcher.fetch(value)
        try:
            _, image = self.store.save_image(
                tid,
                fetched.data,
                fetched.suffix,
                max_pixels=self.settings.max_image_pixels,
                max_images=self.settings.max_cached_images,
                max_image_bytes=self.settings.max_cached_image_bytes,
            )
        except ImageTooLarge as exc:
            raise TaskError(str(exc), 413) from None
        except ValueError as exc:  # ImageReadError
            raise TaskError(f"task {tid}: {fetched.source} is not a readable image ({exc})", 422) from None
        self.store.save_task(tid, dict(data), labels=labels)
        return image

    def _task_labels(self, task: Mapping[str, Any]) -> tuple[list[str] | None, str]:
        """The task's image-level labels and where they came from: a ``<Choices>`` answer in its
        annotations, else a task-data key (``LABEL_KEYS``), else a ``<Choices>`` in its predictions."""
        names, source = self.config.task_choices({"annotations": task.get("annotations")})
        if names:
            return names, source
        raw_data = task.get("data")
        data: Mapping[str, Any] = raw_data if isinstance(raw_data, Mapping) else {}
        for key in self.settings.label_keys:
            if key in data and data[key] not in (None, "", []):
                raw = data[key]
                found = [str(v) for v in raw] if isinstance(raw, (list, tuple)) else [str(raw)]
                unknown = [n for n in found if n not in self.classmap.foreground]
                if unknown:
                    raise TaskError(
                        f"task label(s) {unknown} (data key {key!r}) are not labels of the config "
                        f"{list(self.classmap.foreground)}; add them as <Label value=...> or fix the task"
                    )
                return found, f"task data key {key!r}"
        names, source = self.config.task_choices({"predictions": task.get("predictions")})
        if names:
            return names, source
        return None, ""

    # -- annotations ----------------------------------------------------------------------------
    def _store_annotation(self, annotation: Mapping[str, Any], task: Mapping[str, Any]) -> str | None:
        tid = check_id(task.get("id") if task else annotation.get("task"), "task")
        if annotation.get("was_cancelled"):
            log.info("project %s task %s: skipped annotation, nothing stored", self.project_id, tid)
            return None
        results = annotation.get("result") or []
        data = (task or {}).get("data") or self.store.load_task(tid) or {}
        if not isinstance(data, Mapping):
            data = {}
        chosen, _ = self.config.task_choices({"annotations": [annotation]})
        mask = self.config.control.to_mask(results, self.classmap)
        if mask is None and chosen is not None:
            # an image-level answer only (<Choices>): remembered as the task's labels, never as an empty mask
            if data:
                self.store.save_task(tid, dict(data), labels=chosen)
            log.info(
                "project %s task %s: annotation chose %s and drew no %s region: labels kept, no human mask stored",
                self.project_id,
                tid,
                chosen,
                self.config.control.tag,
            )
            return None
        image_shape = None
        if data:
            try:
                image_shape = self._task_image(tid, data, chosen).shape[:2]
            except (TaskError, FetchError) as exc:
                self.store.save_task(tid, dict(data), labels=chosen)  # training fetches the image again later
                log.warning(
                    "project %s task %s: image not fetched (%s); storing the mask anyway", self.project_id, tid, exc
                )
        if mask is None:
            if image_shape is None:
                log.info(
                    "project %s task %s: annotation has no %s result and the image size is unknown: nothing stored",
                    self.project_id,
                    tid,
                    self.config.control.tag,
                )
                return None
            mask = np.zeros(image_shape, np.uint8)  # submitted without regions: all background
        if image_shape is not None and mask.shape != tuple(image_shape):
            log.warning(
                "project %s task %s: annotation is %s but the image is %s; resizing the mask",
                self.project_id,
                tid,
                mask.shape,
                tuple(image_shape),
            )
            mask = cv2.resize(mask, (image_shape[1], image_shape[0]), interpolation=cv2.INTER_NEAREST)
        self.store.save_human(tid, mask, self.classmap, annotation.get("id"))
        log.info("project %s task %s: stored human mask (%d labelled px)", self.project_id, tid, int((mask > 0).sum()))
        return tid

    def _delete_annotations(self, data: Mapping[str, Any]) -> list[str]:
        items = data.get("annotations") or ([data["annotation"]] if data.get("annotation") else [])
        ids = {a.get("id") for a in items if isinstance(a, Mapping)}
        deleted = []
        for tid in self.store.tasks_of_annotations(ids):
            if self.store.delete_human(tid):
                deleted.append(tid)
        return deleted


def _task_id(task: Mapping[str, Any]) -> str:
    if not isinstance(task, Mapping):
        raise TaskError(f"a task must be an object with 'id' and 'data', got {type(task).__name__}")
    return check_id(task.get("id"), "task")


def _safe_task_id(task: Any) -> str:
    """The task's id for a log line, whatever the task holds."""
    return repr(task.get("id"))[:40] if isinstance(task, Mapping) else f"<{type(task).__name__}>"


def annotation_pairs(data: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """``(annotation, task)`` pairs of a single or bulk annotation webhook."""
    ann, task = data.get("annotation"), data.get("task")
    if isinstance(ann, list):
        tasks = {str(t.get("id")): t for t in (task if isinstance(task, list) else []) if isinstance(t, Mapping)}
        return [(a, tasks.get(str(a.get("task")), {"id": a.get("task")})) for a in ann if isinstance(a, Mapping)]
    if isinstance(ann, Mapping):
        if not isinstance(task, Mapping):
            task = {"id": ann.get("task")}
        return [(ann, task)]
    raise ValueError("annotation webhook has no 'annotation' object")


def _to_config_indices(mask: np.ndarray, model_cmap: ClassMap, cmap: ClassMap) -> np.ndarray:
    """Re-index a mask from the model's class map to the config's (by class name)."""
    if model_cmap.names == cmap.names:
        return mask
    lut = np.zeros(256, np.uint8)
    lut[255] = 255
    for i, name in enumerate(model_cmap.names):
        if name in cmap.names:
            lut[i] = cmap.index(name)
    return lut[mask]
