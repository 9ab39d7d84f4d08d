"""The HTTP endpoints of the serving API."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError

from serving.deps import AdminAuth, ModelDep, RuntimeDep, scoring
from serving.invocations import InvocationError, parse_invocation
from serving.schemas import (
    BatchIn,
    BatchOut,
    HealthOut,
    InvocationsOut,
    ModelInfoOut,
    PredictionOut,
    ReloadOut,
    TicketIn,
)
from serving.state import public_version

router = APIRouter()

SCORING_PATHS = frozenset({"/predict", "/predict/batch", "/invocations"})
"""Paths behind the optional prediction token (checked by ``serving.middleware``)."""

_SCORING_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No bearer token (only when a prediction token is configured)"},
    403: {"description": "Wrong prediction token"},
    413: {"description": "Request body larger than the cap of the endpoint"},
    503: {"description": "No model loaded yet"},
}


class JSONBytes(Response):
    """A JSON response encoded with orjson (numpy-aware)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def _row(ticket: TicketIn) -> dict[str, Any]:
    return ticket.__dict__


@router.post(
    "/predict",
    response_model=PredictionOut,
    responses=_SCORING_ERRORS,
)
async def predict(ticket: TicketIn, request: Request) -> Response:
    """Classify the urgency of one ticket."""
    runtime, model = scoring(request)
    labels, proba = await runtime.predict(model, [_row(ticket)], "predict")
    return JSONBytes(runtime.present(model, labels, proba, [ticket.ticket_id])[0])


@router.post(
    "/predict/batch",
    response_model=BatchOut,
    responses=_SCORING_ERRORS,
)
async def predict_batch(batch: BatchIn, request: Request) -> Response:
    """Classify the urgency of a batch of tickets (at most the configured batch limit)."""
    runtime, model = scoring(request)
    limit = runtime.settings.batch_limit
    if len(batch.tickets) > limit:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "tickets"),
                    "msg": f"at most {limit} tickets per request, got {len(batch.tickets)}",
                    "type": "too_long",
                }
            ]
        )
    version = public_version(model.version)
    if not batch.tickets:
        return JSONBytes({"predictions": [], "model_version": version})
    rows = [_row(t) for t in batch.tickets]
    labels, proba = await runtime.predict(model, rows, "predict/batch")
    items = runtime.present(model, labels, proba, [t.ticket_id for t in batch.tickets])
    return JSONBytes({"predictions": items, "model_version": version})


@router.post(
    "/invocations",
    response_model=InvocationsOut,
    responses={
        **_SCORING_ERRORS,
        415: {"description": "Content type other than JSON or CSV, or a charset other than UTF-8"},
        422: {"description": "Malformed body or invalid rows (the location is named)"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "dataframe_split, dataframe_records or inputs",
                    }
                },
                "text/csv": {
                    "schema": {
                        "type": "string",
                        "description": "header naming source, customer_tier, title/description",
                    }
                },
            },
            "required": True,
        }
    },
)
async def invocations(request: Request) -> Response:
    """MLflow scoring protocol: predicted labels, like ``mlflow models serve``."""
    runtime, model = scoring(request)
    body = await request.body()
    try:
        tickets, _key = parse_invocation(body, request.headers.get("content-type"))
    except InvocationError as exc:
        return JSONBytes({"detail": exc.detail}, status_code=exc.status)
    limit = runtime.settings.batch_limit
    if len(tickets) > limit:
        return JSONBytes(
            {"detail": [{"loc": ["body"], "msg": f"at most {limit} rows per request"}]},
            status_code=422,
        )
    if not tickets:
        return JSONBytes({"predictions": []})
    labels, _proba = await runtime.predict(model, [_row(t) for t in tickets], "invocations")
    return JSONBytes({"predictions": labels})


@router.post(
    "/reload-model",
    response_model=ReloadOut,
    dependencies=[AdminAuth],
    responses={
        401: {"description": "No bearer token"},
        403: {"description": "Wrong token, or reload disabled"},
        502: {"description": "The new version could not be loaded; the old one still serves"},
        503: {"description": "The registry could not be read; the old model still serves"},
    },
)
async def reload_model(runtime: RuntimeDep) -> Response:
    """Re-resolve the model URI and swap in the new version (all workers follow)."""
    result = await runtime.service.reload("request")
    return JSONBytes(result.to_dict(), status_code=result.http_status)


@router.get("/health", response_model=HealthOut)
async def health(runtime: RuntimeDep) -> Response:
    """Liveness: always 200 while the process runs."""
    model = runtime.service.model
    return JSONBytes(
        {
            "status": "ok",
            "model_loaded": model is not None,
            "model_version": public_version(model.version) if model else None,
        }
    )


@router.get("/ready", response_model=HealthOut, responses={503: {"description": "No model"}})
async def ready(runtime: RuntimeDep) -> Response:
    """Readiness: 200 only when a model is loaded."""
    model = runtime.service.model
    if model is None:
        return JSONBytes(
            {
                "status": "not ready",
                "model_loaded": False,
                "model_version": None,
                "reason": runtime.service.last_error or "no model loaded yet",
            },
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    return JSONBytes(
        {"status": "ready", "model_loaded": True, "model_version": public_version(model.version)}
    )


@router.get("/ping", include_in_schema=False)
async def ping(runtime: RuntimeDep) -> Response:
    """MLflow scoring-server health check (200 when a model is loaded)."""
    code = 200 if runtime.service.model is not None else 503
    return Response(b"\n", status_code=code, media_type="application/json")


@router.get("/version", include_in_schema=False)
async def version() -> Response:
    """Package version (MLflow scoring-server compatibility)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        v = pkg_version("ticket-urgency")
    except PackageNotFoundError:
        v = "unknown"
    return Response(v, media_type="text/plain")


@router.get("/model", response_model=ModelInfoOut, responses={503: {"description": "No model"}})
async def model_info(runtime: RuntimeDep, model: ModelDep) -> Response:
    """The served model: name, version, run id, URI, load time and training metrics."""
    ref = model.ref
    return JSONBytes(
        {
            "name": ref.name,
            "version": public_version(ref.version),
            "run_id": ref.run_id,
            "uri": runtime.settings.model_uri,
            "version_uri": ref.version_uri,
            "source": ref.source,
            "loaded_at": model.loaded_at.isoformat(),
            "load_seconds": round(model.load_seconds, 3),
            "classes": model.classes,
            "fast_path": model.fast is not None,
            "metrics": model.metrics,
        }
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics."""
    data, content_type = runtime.metrics.render()
    return Response(data, media_type=content_type)
