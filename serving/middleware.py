"""Pure ASGI middleware: body-size caps (413 before parsing) and request metrics."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import SecretStr
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


async def _reply(
    send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                (b"connection", b"close"),  # the body was not read
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class EdgeMiddleware:
    """Check the prediction token, reject bodies over the cap with 413, count every request.

    The optional prediction bearer token is checked here, before the body is read or parsed
    (401 without a bearer token, 403 with a wrong one), for the scoring paths. Doing it at the
    edge rather than as a FastAPI dependency keeps ``/predict`` free of dependency resolution,
    which costs tens of microseconds per request.

    A request with ``Content-Length`` is checked against it before anything is read (the server
    reads exactly that many bytes as the body); a chunked upload is buffered and counted as it
    arrives, so neither can make the app parse more than the cap.

    Args:
        app: The wrapped ASGI app.
        metrics: Request counts and latency go here.
        caps: Body cap in bytes per path.
        default_cap: Cap of any other path.
        predict_token: The prediction token (None or empty: the scoring paths are open).
        token_paths: The paths that need it.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        caps: Mapping[str, int],
        default_cap: int,
        predict_token: SecretStr | None = None,
        token_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.caps = dict(caps)
        self.default_cap = default_cap
        secret = predict_token.get_secret_value() if predict_token is not None else ""
        self.token = secret.encode("utf-8") if secret else None
        self.token_paths = token_paths

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
            if self.token is not None and path in self.token_paths:
                denied = self._check_token(scope)
                if denied is not None:
                    status = denied[0]
                    await _reply(send, *denied)
                    return
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
                    receive = replay_body(body, receive)
                # with a Content-Length the server reads exactly that many bytes: nothing to do

            async def send_wrapper(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe_request(endpoint, method, status, time.perf_counter() - started)

    def _check_token(
        self, scope: Scope
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        """None when the bearer token is right, else the 401/403 reply."""
        assert self.token is not None
        given = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and token.strip():
                    given = token.strip()
                break
        if given is None:
            return (
                401,
                {"detail": "prediction requires an 'Authorization: Bearer <token>' header"},
                [(b"www-authenticate", b"Bearer")],
            )
        if not hmac.compare_digest(given, self.token):
            return 403, {"detail": "wrong token for prediction"}, []
        return None

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


def replay_body(body: bytes, original: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then waits on the original (disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()  # later reads wait for the real disconnect

    return receive
