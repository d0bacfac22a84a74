"""The backend's exceptions as JSON answers: ``{"status": "error", "error": "<what to fix>"}``.

=================================================  =====================================================
exception                                          status
=================================================  =====================================================
``FetchError``, ``TaskError``                      their own ``status`` (403 refused URL, 502 Label
                                                   Studio refused the key, 400 bad task, ...)
``ImageTooLarge``                                  413
``ConfigError``                                    400 (the labelling config cannot be used)
``ValueError``, ``KeyError``, ``FileNotFoundError``  400 (a bad request: no project, invalid id, ...)
=================================================  =====================================================

Any other exception is a bug and is left to the server (500, traceback in its log). Routes raise;
:func:`install_error_handlers` registers :func:`handle_backend_error` for these classes, and
answers the framework's own errors in the same shape: a body FastAPI cannot read as the route's
JSON object is ``400`` with one line naming the field, an ``HTTPException`` (``404`` unknown route,
``413`` body over ``MAX_BODY_BYTES``) keeps its status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import NamedTuple

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from labelstudio_backend.fetch import FetchError
from labelstudio_backend.label_config import ConfigError
from labelstudio_backend.model import TaskError
from labelstudio_backend.store import ImageTooLarge

log = logging.getLogger(__name__)


class ErrorAnswer(NamedTuple):
    """How one exception is answered: HTTP ``status``, the ``message`` sent back, and the prefix of
    its warning in the log (``None``: not logged)."""

    status: int
    message: str
    log_prefix: str | None


# (exception classes, status (None: the exception's own ``status``), log prefix), first match wins
_RULES: tuple[tuple[tuple[type[Exception], ...], int | None, str | None], ...] = (
    ((FetchError, TaskError), None, ""),
    ((ImageTooLarge,), 413, None),
    ((ConfigError,), 400, "labelling config: "),
    ((ValueError, KeyError, FileNotFoundError), 400, "bad request: "),
)

HANDLED: tuple[type[Exception], ...] = tuple(cls for classes, _, _ in _RULES for cls in classes)
"""Every exception class answered by :func:`handle_backend_error`."""


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The backend's error body with ``status``."""
    return JSONResponse({"status": "error", "error": message}, status_code=status, headers=headers)


def answer_for(exc: Exception) -> ErrorAnswer:
    """How ``exc`` is answered; ``TypeError`` for an exception that is not one of :data:`HANDLED`."""
    for classes, status, log_prefix in _RULES:
        if isinstance(exc, classes):
            # str(KeyError("x")) is "'x'": answer with the bare message
            message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            # (the rules without a status list only exceptions that carry their own: FetchError, TaskError)
            code = exc.status if status is None else status  # type: ignore[attr-defined]
            return ErrorAnswer(code, message, log_prefix)
    raise TypeError(f"{type(exc).__name__} is not a backend error; handled: {[c.__name__ for c in HANDLED]}")


async def handle_backend_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI exception handler: log the problem and answer it (see :func:`answer_for`)."""
    answer = answer_for(exc)
    if answer.log_prefix is not None:
        log.warning("%s%s", answer.log_prefix, answer.message)
    return error_response(answer.status, answer.message)


def validation_message(exc: RequestValidationError) -> str:
    """One line for FastAPI's validation errors, e.g. ``request body: expected a JSON object``."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request body"
        if err.get("type") == "json_invalid":
            parts.append(f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'parse error')})")
        elif err.get("type") in ("dict_type", "model_attributes_type"):
            parts.append(f"{where}: expected a JSON object")
        else:
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request body"


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI could not read the body as the route's parameters: ``400`` with one line."""
    if not isinstance(exc, RequestValidationError):  # registered for that class only
        raise exc
    message = validation_message(exc)
    log.warning("bad request: %s %s", request.url.path, message)
    return error_response(400, message)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    """Starlette/FastAPI ``HTTPException`` (unknown route, body too large) in the backend's shape."""
    if not isinstance(exc, HTTPException):  # registered for that class only
        raise exc
    if exc.status_code == 413:
        log.warning("%s: %s", request.url.path, exc.detail)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception of :data:`HANDLED` raised by a route with :func:`handle_backend_error`,
    and the framework's validation errors and ``HTTPException`` in the same JSON shape."""
    for cls in HANDLED:
        app.add_exception_handler(cls, handle_backend_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(HTTPException, handle_http_exception)
