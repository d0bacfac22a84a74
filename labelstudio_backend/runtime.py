"""``Backend``: what one worker process builds once and every route shares.

The engine, the image fetcher, the training jobs, the single background thread that applies
webhook events in arrival order (it first preloads the served models), and the request counters.
:func:`labelstudio_backend.app.create_app` builds one and puts it on ``app.state.backend``; routes
receive it through :func:`get_backend`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request

from labelstudio_backend.engine import Engine
from labelstudio_backend.fetch import ImageFetcher, Resolver
from labelstudio_backend.jobs import TrainingJobs
from labelstudio_backend.metrics import Metrics
from labelstudio_backend.model import GFNSegmenter, Services, compute_slots
from labelstudio_backend.settings import BackendSettings
from labelstudio_backend.store import ProjectStore, project_id_from

log = logging.getLogger(__name__)

MODEL_CLASS = GFNSegmenter

PRELOAD_PROJECTS = 4
"""At start-up each worker loads the served models of this many most recently published projects."""


class Backend:
    """The shared objects of one worker process.

    Attributes:
        settings: the backend's settings.
        fetcher: fetches task images (closed at shutdown).
        jobs: background refinement rounds.
        services: what every model instance shares (settings, engine, fetcher, jobs).
        events: one thread applying webhook events and ``/train`` calls in arrival order.
        metrics: request counters (``GET /metrics``).
        model_class: the model built per request (``GFNSegmenter``).
    """

    def __init__(
        self,
        settings: BackendSettings,
        engine: Engine,
        fetcher: ImageFetcher,
        *,
        model_class: type[GFNSegmenter] = MODEL_CLASS,
    ):
        self.settings = settings
        self.fetcher = fetcher
        self.jobs = TrainingJobs(settings, engine, fetcher)
        self.services = Services(
            settings=settings,
            engine=engine,
            fetcher=fetcher,
            jobs=self.jobs,
            compute=compute_slots(settings.predict_concurrency),
        )
        self.events = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gfn-webhook")
        self.metrics = Metrics()
        self.model_class = model_class

    @classmethod
    def build(
        cls,
        settings: BackendSettings,
        *,
        engine: Engine | None = None,
        transport: Any = None,
        resolver: Resolver | None = None,
    ) -> Backend:
        """Create ``MODEL_DIR``, set torch's threads, and build the engine and fetcher from ``settings``.

        ``engine``, ``transport`` (httpx) and ``resolver`` (host -> addresses) can be replaced in tests.
        """
        settings.model_dir.mkdir(parents=True, exist_ok=True)
        if settings.torch_threads:
            import torch

            torch.set_num_threads(settings.torch_threads)
        engine = engine or Engine(settings)
        fetcher = ImageFetcher(
            label_studio_url=settings.label_studio_url,
            api_key=settings.api_key,
            allowed_hosts=settings.allowed_hosts,
            local_roots=settings.local_roots,
            max_bytes=settings.max_image_bytes,
            timeout=settings.fetch_timeout,
            transport=transport,
            resolver=resolver,
        )
        return cls(settings, engine, fetcher)

    def model_for(self, project: Any, label_config: str | None) -> GFNSegmenter:
        """The model of a request's project (``"<id>.<ts>"`` or ``{"id": ...}``); raises ``ValueError``
        for a missing or invalid project and ``ConfigError`` for an unusable labelling config."""
        return self.model_class(project_id_from(project), label_config, self.services)

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the event thread, after the work queued before it."""
        self.events.submit(work)

    def wait_idle(self, timeout: float | None = 60) -> None:
        """Wait until queued webhook work and training jobs are done (for tests)."""
        self.events.submit(lambda: None).result(timeout=timeout)
        self.jobs.wait(timeout=timeout)

    def start(self) -> None:
        """At server start-up, inside its event loop: size the request thread pool (``THREADS``) and queue
        :meth:`preload` on the event thread."""
        if self.settings.threads:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = self.settings.threads
        self.events.submit(self.preload)
        log.info(
            "gfn-autolabel ML backend: model dir %s, Label Studio %s, allowed hosts %s",
            self.settings.model_dir,
            self.settings.label_studio_url or "(unset)",
            list(self.settings.allowed_hosts),
        )

    def preload(self, limit: int = PRELOAD_PROJECTS) -> list[str]:
        """Load the served model of the ``limit`` most recently published projects and run it once on a
        small blank image (the ONNX export happens then), so that this worker's first ``/predict`` does
        not wait for them. Holds a compute slot while it runs; failures are logged, never raised.

        Returns the ids of the projects whose model is ready."""
        import numpy as np

        root = self.settings.model_dir
        try:
            found = sorted(root.glob("*/current.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError as exc:
            log.warning("preloading models: cannot list %s (%s)", root, exc)
            return []
        ready = []
        for path in found[:limit]:
            try:
                cur = ProjectStore(root, path.parent.name).current()
                if cur is None:
                    continue
                t0 = time.perf_counter()
                with self.services.compute:
                    self.services.engine.label(cur.checkpoint, np.zeros((64, 64, 3), np.uint8), None)
                ready.append(path.parent.name)
                log.info(
                    "project %s: model %s ready in %.1fs", path.parent.name, cur.model_version, time.perf_counter() - t0
                )
            except Exception as exc:  # a broken model is reported when a request needs it
                log.warning("project %s: preloading its model failed (%s)", path.parent.name, exc)
        return ready

    def shutdown(self) -> None:
        """Drop queued work, stop the threads and close the fetcher's connections."""
        self.events.shutdown(wait=False, cancel_futures=True)
        self.jobs.shutdown()
        self.fetcher.close()


async def get_backend(request: Request) -> Backend:
    """FastAPI dependency: the app's :class:`Backend` (async, so it costs no thread hop)."""
    return request.app.state.backend
