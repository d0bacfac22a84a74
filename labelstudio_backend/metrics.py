"""Request counters of one worker process, served by ``GET /metrics``.

``requests`` counts answers per path (``"<path>:error"`` for a status >= 400); ``seconds`` sums the
time spent per path. Requests refused by basic auth are not counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response

CallNext = Callable[[Request], Awaitable[Response]]
HTTPMiddleware = Callable[[Request, CallNext], Awaitable[Response]]


class Metrics:
    """Request counters of this worker process (``GET /metrics``); safe to update from many threads."""

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


def metrics_middleware(metrics: Metrics) -> HTTPMiddleware:
    """An ``app.middleware("http")`` function adding every answered request to ``metrics``."""

    async def count_requests(request: Request, call_next: CallNext) -> Response:
        t0 = time.perf_counter()
        response = await call_next(request)
        metrics.add(request.url.path, time.perf_counter() - t0, response.status_code < 400)
        return response

    return count_requests
