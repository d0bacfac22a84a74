"""The FastAPI application speaking Label Studio's ML backend protocol, assembled from its parts.

- :mod:`.routes`: the protocol's routes (``/health``, ``/setup``, ``/predict``, ``/webhook``,
  ``/train``, ``/versions``, ``/job_status``, ``/metrics``).
- :mod:`.runtime`: :class:`Backend`, what the routes share (engine, fetcher, jobs, event thread).
- :mod:`.errors`: the backend's exceptions as ``{"status": "error", "error": "<what to fix>"}``
  with a 4xx/5xx status.
- :mod:`.auth`: HTTP basic auth on every route; :mod:`.metrics`: request counters;
  :mod:`.limits`: the request-body size limit (``MAX_BODY_BYTES``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from labelstudio_backend.auth import basic_auth_middleware
from labelstudio_backend.engine import Engine
from labelstudio_backend.errors import install_error_handlers
from labelstudio_backend.fetch import Resolver
from labelstudio_backend.limits import BodyLimitMiddleware
from labelstudio_backend.metrics import metrics_middleware
from labelstudio_backend.routes import router
from labelstudio_backend.runtime import Backend
from labelstudio_backend.settings import BackendSettings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    backend: Backend = app.state.backend
    backend.start()
    yield
    backend.shutdown()


def create_app(
    settings: BackendSettings | None = None,
    *,
    engine: Engine | None = None,
    transport: Any = None,
    resolver: Resolver | None = None,
) -> FastAPI:
    """Build the app. ``engine``, ``transport`` (httpx) and ``resolver`` can be replaced in tests.

    ``app.state.backend`` holds the shared :class:`Backend`; ``app.state.wait_idle()`` waits for
    queued webhook work and training jobs (tests).
    """
    settings = settings or BackendSettings.from_env()
    backend = Backend.build(settings, engine=engine, transport=transport, resolver=resolver)
    app = FastAPI(title="gfn-autolabel Label Studio ML backend", lifespan=_lifespan)
    app.state.backend = backend
    app.state.settings = settings
    app.state.services = backend.services
    app.state.jobs = backend.jobs
    app.state.events = backend.events
    app.state.wait_idle = backend.wait_idle
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.middleware("http")(metrics_middleware(backend.metrics))
    if settings.basic_auth is not None:
        # added last, so outermost: refused requests never reach the routes or the counters
        app.middleware("http")(basic_auth_middleware(settings.basic_auth))
    app.include_router(router)
    return app


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
