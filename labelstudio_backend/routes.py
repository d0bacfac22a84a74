"""The routes of Label Studio's ML backend protocol (what Label Studio 1.23 calls, see
``label_studio/ml/api_connector.py``).

- ``GET /``, ``GET /health``: ``{"status": "UP", "model_class": ...}`` (Label Studio waits 1 s).
- ``POST /setup``: ``{"project": "<id>.<ts>", "schema": <config>, ...}`` -> ``{"model_version"}``.
- ``POST /predict``: ``{"tasks", "project", "label_config", "params": {"context"}}`` ->
  ``{"results": [prediction per task]}``.
- ``POST /webhook``: annotation events and ``START_TRAINING`` (answers at once; work runs in the
  background).
- ``POST /train``: the older training call (all annotated tasks in ``annotations``).
- ``GET /versions``, ``POST /job_status``, ``GET /metrics``.

Routes translate requests into calls on the shared :class:`~labelstudio_backend.runtime.Backend`
and its model; they raise the backend's exceptions, which :mod:`labelstudio_backend.errors` answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from labelstudio_backend.errors import error_response
from labelstudio_backend.model import ANNOTATION_EVENTS, DELETE_EVENTS, TRAIN_EVENTS, GFNSegmenter, annotation_pairs
from labelstudio_backend.runtime import Backend, get_backend
from labelstudio_backend.store import ProjectStore, check_id, project_id_from

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = (*ANNOTATION_EVENTS, *DELETE_EVENTS, *TRAIN_EVENTS)
"""The webhook actions the backend acts on; others are answered ``"Unknown event"``."""

router = APIRouter()
# Routes returning plain dicts say ``response_model=None``: their answers are encoded as they are,
# not filtered through a model built from the return annotation.


async def _json(request: Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty); ``ValueError`` otherwise."""
    body = await request.body()
    if not body:
        return {}
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"request body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"request body must be a JSON object, got {type(data).__name__}")
    return data


@router.get("/")
@router.get("/health")
def health(backend: Backend = Depends(get_backend)) -> dict[str, Any]:
    return {"status": "UP", "model_class": backend.model_class.__name__}


@router.post("/setup", response_model=None)
async def setup(request: Request, backend: Backend = Depends(get_backend)) -> dict[str, Any]:
    data = await _json(request)
    model = backend.model_for(data.get("project"), _config(data, "schema", "label_config"))
    return model.setup()


def _object(payload: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``payload[key]`` when it is a JSON object (``{}`` when absent or null); ``ValueError`` otherwise."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"'{key}' must be a JSON object, got {type(value).__name__}")
    return dict(value)


def _config(payload: Mapping[str, Any], *keys: str) -> str | None:
    """The labelling config under the first of ``keys`` present; ``ValueError`` when it is not a string."""
    for key in keys:
        value = payload.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ValueError(f"'{key}' must be the labelling config as an XML string, got {type(value).__name__}")
        return value
    return None


@router.post("/predict", response_model=None)
def predict(payload: dict[str, Any], backend: Backend = Depends(get_backend)) -> dict[str, Any]:
    params = _object(payload, "params")
    context = _object(params, "context")
    model = backend.model_for(payload.get("project"), _config(payload, "label_config"))
    response = model.predict(payload.get("tasks") or [], context=context)
    return {"results": response["predictions"], "model_version": response["model_version"]}


@router.post("/webhook")
def webhook(payload: dict[str, Any], backend: Backend = Depends(get_backend)) -> JSONResponse:
    event = str(payload.get("action", ""))
    project = payload.get("project")
    if event not in WEBHOOK_EVENTS:
        return JSONResponse({"status": "Unknown event", "event": event}, status_code=200)
    if not isinstance(project, Mapping):
        return error_response(400, f"webhook {event} has no 'project' object")
    project_id_from(project)  # validate before queueing
    _config(project, "label_config")
    if event in ANNOTATION_EVENTS:
        for annotation, task in annotation_pairs(payload):
            check_id(task.get("id") if task else annotation.get("task"), "task")
            if not isinstance(annotation.get("result") or [], list):
                raise ValueError(f"webhook {event}: the annotation's 'result' must be a list")
    backend.submit(lambda: _apply_event(backend, event, project, payload))
    return JSONResponse({"status": "ok", "event": event, "queued": True}, status_code=201)


def _apply_event(backend: Backend, event: str, project: Mapping[str, Any], payload: Mapping[str, Any]) -> None:
    """Background: one webhook event on the project's model; failures are logged, never raised."""
    try:
        model = backend.model_for(project, project.get("label_config"))
        result = model.fit(event, payload)
        log.info("webhook %s: %s", event, {k: v for k, v in result.items() if k != "status"})
    except Exception as exc:  # background: report in the log, never crash the worker
        log.error("webhook %s for project %s failed: %s", event, project.get("id"), exc, exc_info=True)


@router.post("/train", response_model=None)
def train(payload: dict[str, Any], backend: Backend = Depends(get_backend)) -> dict[str, Any]:
    """Older Label Studio training call: every annotated task, then one round."""
    model = backend.model_for(payload.get("project"), _config(payload, "label_config"))
    tasks = payload.get("annotations") or []
    if not isinstance(tasks, list) or not all(
        isinstance(t, Mapping) and isinstance(t.get("annotations") or [], list) for t in tasks
    ):
        raise ValueError("'annotations' must be a list of tasks, each with a list under 'annotations'")
    backend.submit(lambda: _train_on(model, tasks))
    return {"status": "ok", "queued": True}


def _train_on(model: GFNSegmenter, tasks: Sequence[Mapping[str, Any]]) -> None:
    """Background: store the annotations of ``tasks``, then start one round; failures are logged."""
    try:
        for task in tasks:
            for ann in task.get("annotations") or []:
                model.fit("ANNOTATION_CREATED", {"annotation": ann, "task": task}, auto_train=False)
        model.start_training("training requested by Label Studio (/train)")
    except Exception as exc:  # background: report in the log
        log.error("train: %s", exc, exc_info=True)


@router.get("/versions", response_model=None)
async def versions(request: Request, backend: Backend = Depends(get_backend)) -> Any:
    """Model versions of a project. Label Studio 1.23 sends no project here: with a single project
    under MODEL_DIR that one is meant; otherwise 404 makes Label Studio show its own version."""
    data = await _json(request)
    project = data.get("project") or request.query_params.get("project")
    if project:
        pid = project_id_from(project)
    else:
        known = _known_projects(backend.settings.model_dir)
        if len(known) != 1:
            return error_response(404, f"say which project (?project=<id>); projects: {known}")
        pid = known[0]
    store = ProjectStore(backend.settings.model_dir, pid)
    names = [v["model_version"] for v in store.versions()]
    return {"versions": names or [store.model_version()], "model_version": store.model_version()}


def _known_projects(model_dir: Path) -> list[str]:
    """Ids of the projects under ``model_dir`` that received a labelling config, sorted."""
    return sorted(p.name for p in model_dir.iterdir() if (p / "classes.json").exists())


@router.post("/job_status", response_model=None)
def job_status(payload: dict[str, Any], backend: Backend = Depends(get_backend)) -> Any:
    job = payload.get("job")
    if not isinstance(job, str) or not job:
        raise ValueError("'job' must be a training job id (a string)")
    status = backend.jobs.status(job)
    if status is None:
        return error_response(410, f"unknown training job {job!r}")
    return status


@router.get("/metrics")
def get_metrics(backend: Backend = Depends(get_backend)) -> dict[str, Any]:
    return backend.metrics.snapshot()
