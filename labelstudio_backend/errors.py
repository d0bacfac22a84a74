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
:func:`install_error_handlers` registers :func:`handle_backend_error` for these classes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import NamedTuple

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception of :data:`HANDLED` raised by a route with :func:`handle_backend_error`."""
    for cls in HANDLED:
        app.add_exception_handler(cls, handle_backend_error)
