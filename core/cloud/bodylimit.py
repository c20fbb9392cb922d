"""Request bodies over a limit are refused with 413 before they are read: a declared ``Content-Length`` over the
limit is answered at once (the body is never received), and a body without one (chunked) is counted as it streams
in and cut off at the first chunk past the limit. A pure ASGI middleware, so it sees the body before any parser."""
from __future__ import annotations

import json

from starlette.exceptions import HTTPException

#: default limit: a fingerprint of the default backbone is ~0.6 MB as a file, ~0.8 MB as base64 in JSON
DEFAULT_MAX_BODY_BYTES = 16 * 1024**2


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than this cloud accepts ({limit:,} bytes)")


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: at most ``max_bytes`` of request body per request."""

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _refuse(send, 400, "Content-Length is not a number")
                return
            if length > self.max_bytes:
                await _refuse(send, 413, BodyTooLarge(self.max_bytes).detail)
                return
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as err:
            if not started:
                await _refuse(send, 413, err.detail)
