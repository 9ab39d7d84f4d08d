"""The fast lane of ``POST /predict``: the common case answered without FastAPI's routing.

``/predict`` is the hot path of the API, and at a few hundred microseconds per request the
framework's share is large: routing, building a ``Request``, dependency resolution, reading
the body through Starlette, ``json.loads`` and pydantic validation in Python mode, the exit
stacks, and a ``Response`` object. Measured with the same model, it is about half of what a
request costs (docs/benchmarks.md).

:class:`PredictFastLane` is pure ASGI middleware. For a ``POST /predict`` with a JSON content
type it reads the body, validates it with the same :class:`~serving.schemas.TicketIn` model
(pydantic-core's JSON parser, no intermediate dicts), scores it through the same
:meth:`serving.runtime.Runtime.predict` (micro-batching, prediction log, metrics) and sends the
same answer as the FastAPI route.

Everything else falls through to the FastAPI app unchanged, with the body replayed: another
path or method, another content type, no model loaded (503), a body that does not validate
(422). Error answers are therefore produced by FastAPI exactly as before, and the route stays
the one documented in OpenAPI. The token and body caps are checked by
:class:`serving.middleware.EdgeMiddleware`, which wraps this lane.
"""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.middleware import replay_body
from serving.runtime import Runtime
from serving.schemas import TicketIn

PATH = "/predict"


def _is_json(scope: Scope) -> bool:
    """True when the request's content type is ``application/json`` (any parameters)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.partition(b";")[0].strip().lower()
            return bool(media == b"application/json")
    return False


async def _read(receive: Receive) -> bytes | None:
    """The whole request body (None when the client went away first)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class PredictFastLane:
    """Answer well-formed ``POST /predict`` requests directly; pass everything else on.

    Args:
        app: The wrapped ASGI app (the FastAPI router stack).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        body = await _read(receive)
        if body is None:  # the client left; nothing to answer
            return
        runtime: Runtime = scope["app"].state.runtime
        model = runtime.service.model
        ticket = None
        if model is not None and body:
            try:
                ticket = TicketIn.model_validate_json(body)
            except ValidationError:
                ticket = None  # FastAPI builds the 422 answer, as for any route
        if ticket is None or model is None:
            await self.app(scope, replay_body(body, receive), send)
            return
        labels, proba = await runtime.predict(model, [ticket.__dict__], "predict")
        answer = runtime.present(model, labels, proba, [ticket.ticket_id])[0]
        data = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(data)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
