"""A request-body size limit enforced while the body is read (``MAX_BODY_BYTES``).

A body announced larger than the limit (``Content-Length``) is answered ``413`` before any of it
is read. A body without a length (chunked), or one longer than announced, is counted as it
arrives: the read that crosses the limit raises :class:`BodyTooLarge`, which the route's error
handling answers ``413``, so at most ``limit`` bytes (plus one chunk) are ever held in memory.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelstudio_backend.errors import error_response


class BodyTooLarge(HTTPException):
    """A request body over ``MAX_BODY_BYTES`` (an ``HTTPException`` so that FastAPI's own body
    parsing lets it through unchanged)."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(413, too_large_message(limit))


def too_large_message(limit: int) -> str:
    return f"request body is over MAX_BODY_BYTES={limit} bytes; send fewer tasks per request"


class BodyLimitMiddleware:
    """Pure ASGI middleware (it wraps ``receive``, so nothing is buffered by the middleware itself)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            response = error_response(413, too_large_message(self.max_bytes), headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        seen = 0
        limit = self.max_bytes

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
