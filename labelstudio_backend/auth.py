"""HTTP basic auth on every route (``BASIC_AUTH_USER`` / ``BASIC_AUTH_PASS``).

Label Studio sends the credentials of a project's model connection as ``Authorization: Basic
<base64(user:password)>``. Both parts are compared in constant time. A request without the right
ones is answered ``401`` with a ``WWW-Authenticate`` challenge before any route (or the request
counters) sees it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from labelstudio_backend.errors import error_response

REALM = "gfn-autolabel"

CallNext = Callable[[Request], Awaitable[Response]]
HTTPMiddleware = Callable[[Request, CallNext], Awaitable[Response]]


def authorised(header: str, expected: tuple[str, str]) -> bool:
    """Whether an ``Authorization`` header value carries the ``(user, password)`` of ``expected``."""
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


def unauthorised() -> JSONResponse:
    """The 401 answer, with the challenge that makes clients send basic credentials."""
    return error_response(
        401, "unauthorised: basic auth required", headers={"WWW-Authenticate": f'Basic realm="{REALM}"'}
    )


def basic_auth_middleware(expected: tuple[str, str]) -> HTTPMiddleware:
    """An ``app.middleware("http")`` function refusing requests without the ``expected`` credentials."""

    async def require_basic_auth(request: Request, call_next: CallNext) -> Response:
        if not authorised(request.headers.get("authorization", ""), expected):
            return unauthorised()
        return await call_next(request)

    return require_basic_auth
