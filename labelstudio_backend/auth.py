"""HTTP basic auth on every route (``BASIC_AUTH_USER`` / ``BASIC_AUTH_PASS``), and the rule that
keeps the backend closed by default.

The backend refuses to listen on anything but a loopback address without credentials
(:func:`check_listen_address`); ``--allow-unauthenticated`` (``ALLOW_UNAUTHENTICATED=true``)
overrides that, with a warning in the log.

Label Studio sends the credentials of a project's model connection as ``Authorization: Basic
<base64(user:password)>``. Both parts are compared in constant time. A request without the right
ones is answered ``401`` with a ``WWW-Authenticate`` challenge before any route (or the request
counters) sees it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from labelstudio_backend.errors import error_response
from labelstudio_backend.settings import BackendSettings

log = logging.getLogger(__name__)

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


def is_loopback(host: str) -> bool:
    """Whether ``host`` (what the server binds) only accepts connections from this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to any interface


def check_listen_address(host: str, settings: BackendSettings) -> None:
    """Refuse to serve on a non-loopback ``host`` without basic auth, unless explicitly allowed.

    Raises ``ValueError`` saying how to fix it; logs a WARNING when the override is used.
    """
    if settings.basic_auth is not None or is_loopback(host):
        return
    if settings.allow_unauthenticated:
        log.warning(
            "SECURITY: serving on %s WITHOUT authentication (--allow-unauthenticated / ALLOW_UNAUTHENTICATED): "
            "anyone who reaches this port can change project classes (/setup), plant training masks "
            "(/webhook) and use the Label Studio API key for image downloads. Set BASIC_AUTH_USER and "
            "BASIC_AUTH_PASS instead.",
            host,
        )
        return
    raise ValueError(
        f"refusing to listen on {host!r} without authentication: set BASIC_AUTH_USER and BASIC_AUTH_PASS "
        f"(and the same user and password in Label Studio's model connection), listen on 127.0.0.1, or pass "
        f"--allow-unauthenticated (ALLOW_UNAUTHENTICATED=true) if the network is trusted"
    )
