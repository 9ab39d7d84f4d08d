"""The FastAPI application factory: ``create_app(settings)``.

``uvicorn --factory serving.app:create_app`` (what ``ticket-urgency serve`` runs) builds it
from the environment. The model is loaded in the lifespan; the API also starts when nothing
is registered yet (``/ready`` and the prediction endpoints answer 503 until a reload works).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from serving.batcher import MicroBatcher
from serving.fast_lane import PredictFastLane
from serving.metrics import Metrics
from serving.middleware import EdgeMiddleware
from serving.routes import SCORING_PATHS, JSONBytes, router
from serving.runtime import Runtime
from serving.state import ModelService
from ticket_urgency.pii import install_log_masking
from ticket_urgency.prediction_log import PredictionLogger
from ticket_urgency.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def _prediction_logger(settings: Settings, metrics: Metrics) -> PredictionLogger | None:
    from ticket_urgency.storage import open_storage

    try:
        storage = open_storage(settings.storage, settings)
    except Exception as exc:  # storage down or misconfigured: serve anyway, count it
        logger.error("prediction log disabled: cannot open storage %s: %s", settings.storage, exc)
        metrics.log_failures.inc()
        return None

    def on_error(n: int, exc: Exception) -> None:
        metrics.log_failures.inc()
        metrics.log_failed_predictions.inc(n)

    return PredictionLogger(
        storage,
        batch_size=settings.prediction_log_batch_size,
        flush_seconds=settings.prediction_log_flush_seconds,
        max_text_chars=settings.max_text_chars,
        on_error=on_error,
        on_dropped=metrics.log_dropped.inc,
        on_written=metrics.log_written.inc,
    )


def _finite(value: Any) -> Any:
    """``value`` with the non-finite floats (no JSON syntax for them) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


async def validation_failed(request: Request, exc: RequestValidationError) -> Response:
    """422 naming every invalid field, like FastAPI's own handler.

    The invalid input is echoed back as FastAPI does, with ``NaN`` and infinities (which a
    body may contain but JSON cannot express) as ``null``: FastAPI's handler would fail on
    them with a 500. Integers of any size stay as they are.
    """
    return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)


async def http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's answer to an ``HTTPException``, but 422 for a body that is not UTF-8.

    FastAPI answers 400 "There was an error parsing the body" when a JSON body cannot be
    decoded; like any other bad input, it gets 422 naming the body and the first bad byte.
    """
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        return JSONBytes(
            {
                "detail": [
                    {
                        "type": "utf8_invalid",
                        "loc": ["body", cause.start],
                        "msg": f"body is not valid UTF-8 (byte {cause.start}): {cause.reason}",
                    }
                ]
            },
            status_code=422,
        )
    return await http_exception_handler(request, exc)


def create_app(settings: Settings | None = None, *, fast_lane: bool = True) -> FastAPI:
    """Build the serving API.

    Args:
        settings: Configuration; the process settings when omitted.
        fast_lane: Answer well-formed ``POST /predict`` requests in
            :class:`serving.fast_lane.PredictFastLane` (same answers, without FastAPI's
            routing). False sends every request through FastAPI (the tests compare both).

    Returns:
        The FastAPI app. Its lifespan loads the model, starts the model thread, the
        prediction-log writer, the worker sync and the optional registry polling.
    """
    settings = settings or get_settings()
    metrics = Metrics(settings.prometheus_multiproc_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_masking()
        service = ModelService(settings, metrics)
        batcher = MicroBatcher(on_batch=metrics.batch_rows.observe)
        batcher.start()
        plog = _prediction_logger(settings, metrics)
        app.state.runtime = Runtime(settings, metrics, service, batcher, plog)
        metrics.model_loaded.set(0)
        await service.reload("startup")
        tasks = [
            asyncio.create_task(service.warm_up(batcher.idle_seconds), name="registry-warm-up")
        ]
        if plog is not None:
            tasks.append(asyncio.create_task(plog.run(), name="prediction-log"))
        if settings.reload_marker:
            tasks.append(asyncio.create_task(service.watch_marker(), name="worker-sync"))
        if settings.poll_seconds > 0:
            tasks.append(asyncio.create_task(service.poll(), name="registry-poll"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.to_thread(batcher.stop)
            if plog is not None:
                await asyncio.to_thread(plog.flush)
            metrics.mark_process_dead(os.getpid())

    app = FastAPI(
        title="ticket_urgency",
        summary="Support-ticket urgency classification",
        version="1",
        lifespan=lifespan,
        telemetry=(
            None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False}
        ),
    )
    if fast_lane:
        app.add_middleware(PredictFastLane)  # inside EdgeMiddleware: token, caps, metrics first
    app.add_middleware(
        EdgeMiddleware,
        metrics=metrics,
        caps={
            "/predict": settings.max_body_bytes,
            "/predict/batch": settings.max_batch_body_bytes,
            "/invocations": settings.max_batch_body_bytes,
        },
        default_cap=settings.max_body_bytes,
        predict_token=settings.predict_token,
        token_paths=SCORING_PATHS,
    )
    app.add_exception_handler(RequestValidationError, validation_failed)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.include_router(router)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The generated schema plus this app's batch limit (a setting, not in the models)."""
        if app.openapi_schema is None:
            schema = default_openapi()
            tickets = schema["components"]["schemas"]["BatchIn"]["properties"]["tickets"]
            tickets["maxItems"] = settings.batch_limit
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app
