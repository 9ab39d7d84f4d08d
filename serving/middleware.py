"""Pure ASGI middleware: body-size caps (413 before parsing) and request metrics."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import Metrics

KNOWN_PATHS = frozenset(
    {
        "/predict",
        "/predict/batch",
        "/invocations",
        "/reload-model",
        "/health",
        "/ready",
        "/model",
        "/metrics",
        "/ping",
        "/version",
        "/docs",
        "/openapi.json",
    }
)


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class EdgeMiddleware:
    """Reject bodies over the cap of their endpoint with 413 and count every request.

    A request with ``Content-Length`` is checked against it before anything is read (the server
    reads exactly that many bytes as the body); a chunked upload is buffered and counted as it
    arrives, so neither can make the app parse more than the cap.

    Args:
        app: The wrapped ASGI app.
        metrics: Request counts and latency go here.
        caps: Body cap in bytes per path.
        default_cap: Cap of any other path.
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, caps: Mapping[str, int], default_cap: int
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.caps = dict(caps)
        self.default_cap = default_cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        endpoint = path if path in KNOWN_PATHS else "other"
        method: str = scope["method"]
        status = 500
        try:
            if method in ("POST", "PUT", "PATCH"):
                cap = self.caps.get(path, self.default_cap)
                length = _content_length(scope)
                body = None
                if length is None:  # chunked: count the bytes as they arrive
                    body = await self._read_body(receive, cap)
                if (length is not None and length > cap) or (length is None and body is None):
                    status = 413
                    await _reply(
                        send,
                        413,
                        {"detail": f"request body larger than {cap} bytes; split the batch"},
                    )
                    return
                if body is not None:
                    receive = _replay(body, receive)
                # with a Content-Length the server reads exactly that many bytes: nothing to do

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(endpoint, method, status, time.perf_counter() - started)

    @staticmethod
    async def _read_body(receive: Receive, cap: int) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > cap:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    """The request's Content-Length (None when absent or not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, original: Receive) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()  # later reads wait for the real disconnect

    return receive
