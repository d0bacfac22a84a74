"""The FastAPI application speaking Label Studio's ML backend protocol.

Routes (what Label Studio 1.23 calls, see ``label_studio/ml/api_connector.py``):

- ``GET /``, ``GET /health``: ``{"status": "UP", "model_class": ...}`` (Label Studio waits 1 s).
- ``POST /setup``: ``{"project": "<id>.<ts>", "schema": <config>, ...}`` -> ``{"model_version"}``.
- ``POST /predict``: ``{"tasks", "project", "label_config", "params": {"context"}}`` ->
  ``{"results": [prediction per task]}``.
- ``POST /webhook``: annotation events and ``START_TRAINING`` (answers at once; work runs in the
  background).
- ``POST /train``: the older training call (all annotated tasks in ``annotations``).
- ``GET /versions``, ``POST /job_status``, ``GET /metrics``.

Errors answer ``{"status": "error", "error": "<what to fix>"}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from labelstudio_backend.engine import Engine
from labelstudio_backend.fetch import FetchError, ImageFetcher, Resolver
from labelstudio_backend.jobs import TrainingJobs, job_project
from labelstudio_backend.label_config import ConfigError
from labelstudio_backend.model import GFNSegmenter, Services, TaskError
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ImageTooLarge, project_id_from

log = logging.getLogger(__name__)

MODEL_CLASS = GFNSegmenter


class Metrics:
    """Request counters of this worker process (``GET /metrics``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.seconds: dict[str, float] = {}

    def add(self, route: str, seconds: float, ok: bool) -> None:
        with self._lock:
            key = route if ok else f"{route}:error"
            self.counts[key] = self.counts.get(key, 0) + 1
            self.seconds[route] = self.seconds.get(route, 0.0) + seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.counts), "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
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


def create_app(settings: BackendSettings | None = None, *, engine: Engine | None = None,
               transport: Any = None, resolver: Resolver | None = None) -> FastAPI:
    """Build the app. ``engine``, ``transport`` (httpx) and ``resolver`` can be replaced in tests."""
    settings = settings or BackendSettings.from_env()
    settings.model_dir.mkdir(parents=True, exist_ok=True)
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    engine = engine or Engine(settings)
    fetcher = ImageFetcher(
        label_studio_url=settings.label_studio_url, api_key=settings.api_key, allowed_hosts=settings.allowed_hosts,
        local_roots=settings.local_roots, max_bytes=settings.max_image_bytes, timeout=settings.fetch_timeout,
        transport=transport, resolver=resolver,
    )
    jobs = TrainingJobs(settings, engine, fetcher)
    services = Services(settings=settings, engine=engine, fetcher=fetcher, jobs=jobs)
    events = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gfn-webhook")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.threads:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        log.info("gfn-autolabel ML backend: model dir %s, Label Studio %s, allowed hosts %s",
                 settings.model_dir, settings.label_studio_url or "(unset)", list(settings.allowed_hosts))
        yield
        events.shutdown(wait=False, cancel_futures=True)
        jobs.shutdown()
        fetcher.close()

    app = FastAPI(title="gfn-autolabel Label Studio ML backend", lifespan=lifespan)
    app.state.settings = settings
    app.state.services = services
    app.state.jobs = jobs
    app.state.events = events

    def wait_idle(timeout: float | None = 60) -> None:
        """Wait until queued webhook work and training jobs are done (for tests)."""
        events.submit(lambda: None).result(timeout=timeout)
        jobs.wait(timeout=timeout)

    app.state.wait_idle = wait_idle

    @app.middleware("http")
    async def basic_auth_and_metrics(request: Request, call_next):
        t0 = time.perf_counter()
        if settings.basic_auth is not None and not _authorised(request.headers.get("authorization", ""),
                                                               settings.basic_auth):
            return JSONResponse({"status": "error", "error": "unauthorised: basic auth required"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="gfn-autolabel"'})
        response = await call_next(request)
        metrics.add(request.url.path, time.perf_counter() - t0, response.status_code < 400)
        return response

    def model_for(project: Any, label_config: str | None) -> GFNSegmenter:
        return MODEL_CLASS(project_id_from(project), label_config, services)

    def guarded(fn):
        """Map the backend's exceptions to JSON errors with the right status."""
        try:
            return fn()
        except (FetchError, TaskError) as exc:
            log.warning("%s", exc)
            return _error(exc.status, str(exc))
        except ImageTooLarge as exc:
            return _error(413, str(exc))
        except ConfigError as exc:
            log.warning("labelling config: %s", exc)
            return _error(400, str(exc))
        except (ValueError, KeyError, FileNotFoundError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            log.warning("bad request: %s", msg)
            return _error(400, str(msg))

    @app.get("/")
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": MODEL_CLASS.__name__}

    @app.post("/setup")
    async def setup(request: Request):
        try:
            data = await _json(request)
        except ValueError as exc:
            return _error(400, str(exc))

        def run():
            model = model_for(data.get("project"), data.get("schema") or data.get("label_config"))
            return model.setup()

        return guarded(run)

    @app.post("/predict")
    def predict(payload: dict[str, Any]):
        def run():
            params = dict(payload.get("params") or {})
            context = params.pop("context", None) or {}
            model = model_for(payload.get("project"), payload.get("label_config"))
            response = model.predict(payload.get("tasks") or [], context=context)
            return {"results": response["predictions"], "model_version": response["model_version"]}

        return guarded(run)

    @app.post("/webhook")
    def webhook(payload: dict[str, Any]):
        event = str(payload.get("action", ""))
        project = payload.get("project")
        if event not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED", "ANNOTATION_DELETED",
                         "ANNOTATIONS_DELETED", "START_TRAINING"):
            return JSONResponse({"status": "Unknown event", "event": event}, status_code=200)
        if not isinstance(project, Mapping):
            return _error(400, f"webhook {event} has no 'project' object")
        label_config = project.get("label_config")

        def work():
            try:
                model = model_for(project, label_config)
                result = model.fit(event, payload)
                log.info("webhook %s: %s", event, {k: v for k, v in result.items() if k != "status"})
            except Exception as exc:  # background: report in the log, never crash the worker
                log.error("webhook %s for project %s failed: %s", event, project.get("id"), exc, exc_info=True)

        def accept():
            project_id_from(project)  # validate before queueing
            events.submit(work)
            return JSONResponse({"status": "ok", "event": event, "queued": True}, status_code=201)

        return guarded(accept)

    @app.post("/train")
    def train(payload: dict[str, Any]):
        """Older Label Studio training call: every annotated task, then one round."""
        def accept():
            model = model_for(payload.get("project"), payload.get("label_config"))
            tasks = payload.get("annotations") or []

            def work():
                try:
                    for task in tasks:
                        for ann in task.get("annotations") or []:
                            model.fit("ANNOTATION_CREATED", {"annotation": ann, "task": task}, auto_train=False)
                    model.start_training("training requested by Label Studio (/train)")
                except Exception as exc:  # background: report in the log
                    log.error("train: %s", exc, exc_info=True)

            events.submit(work)
            return {"status": "ok", "queued": True}

        return guarded(accept)

    @app.get("/versions")
    async def versions(request: Request):
        """Model versions of a project. Label Studio 1.23 sends no project here: with a single project
        under MODEL_DIR that one is meant; otherwise 404 makes Label Studio show its own version."""
        try:
            data = await _json(request)
        except ValueError as exc:
            return _error(400, str(exc))
        project = data.get("project") or request.query_params.get("project")

        def run():
            from labelstudio_backend.store import ProjectStore

            if project:
                pid = project_id_from(project)
            else:
                known = sorted(p.name for p in settings.model_dir.iterdir() if (p / "classes.json").exists())
                if len(known) != 1:
                    return _error(404, f"say which project (?project=<id>); projects: {known}")
                pid = known[0]
            store = ProjectStore(settings.model_dir, pid)
            names = [v["model_version"] for v in store.versions()]
            return {"versions": names or [store.model_version()], "model_version": store.model_version()}

        return guarded(run)

    @app.post("/job_status")
    def job_status(payload: dict[str, Any]):
        def run():
            job = str(payload.get("job", ""))
            status = jobs.status(job)
            if status is None:
                return _error(410, f"unknown training job {job!r}")
            return status

        return guarded(run)

    @app.get("/metrics")
    def get_metrics() -> dict[str, Any]:
        return metrics.snapshot()

    return app


def _authorised(header: str, expected: tuple[str, str]) -> bool:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return False
    try:
        user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    ok_user = hmac.compare_digest(user.encode(), expected[0].encode())
    ok_pass = hmac.compare_digest(password.encode(), expected[1].encode())
    return ok_user and ok_pass


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn/gunicorn workers (``labelstudio_backend.app:create_app_from_env``).

    Logging level from ``LOG_LEVEL`` (default info)."""
    import os

    level = getattr(logging, os.environ.get("LOG_LEVEL", "info").upper(), logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(level)
    return create_app(BackendSettings.from_env())
