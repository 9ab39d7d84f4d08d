"""FastAPI dependencies: the app's services, the served model and the two bearer tokens.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool,
which costs a thread hop (and a GIL hand-over) per dependency per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated, NamedTuple

from fastapi import Depends, HTTPException, Request, status
from pydantic import SecretStr

from serving.metrics import Metrics
from serving.runtime import Runtime
from ticket_urgency.predictor import LoadedModel
from ticket_urgency.settings import Settings


async def get_runtime(request: Request) -> Runtime:
    """The app's services (model, batcher, prediction log, metrics)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings_dep(runtime: RuntimeDep) -> Settings:
    """The settings the app was created with."""
    return runtime.settings


async def get_metrics(runtime: RuntimeDep) -> Metrics:
    """The app's metrics."""
    return runtime.metrics


async def require_model(runtime: RuntimeDep) -> LoadedModel:
    """The served model, or 503 when none is loaded yet."""
    return _served_model(runtime)


def _served_model(runtime: Runtime) -> LoadedModel:
    model = runtime.service.model
    if model is None:
        why = runtime.service.last_error or "no reload has succeeded yet"
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=(
                f"no model is loaded ({why}). Train and promote a model to "
                f"{runtime.settings.model_uri}, then POST /reload-model."
            ),
            headers={"Retry-After": "5"},
        )
    return model


ModelDep = Annotated[LoadedModel, Depends(require_model)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _check(expected: SecretStr, given: str | None, what: str) -> None:
    if given is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=f"{what} requires an 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8")):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"wrong token for {what}")


async def require_admin(request: Request, runtime: RuntimeDep) -> None:
    """Check the admin bearer token (403 when no admin token is configured)."""
    token = runtime.settings.admin_token
    given = _bearer(request)
    if token is None or not token.get_secret_value():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="model reload is disabled: TICKET_URGENCY_ADMIN_TOKEN is not set",
        )
    _check(token, given, "model reload")


AdminAuth = Depends(require_admin)


class Scoring(NamedTuple):
    """What a scoring endpoint needs: the app's services and the model that answers."""

    runtime: Runtime
    model: LoadedModel


def scoring(request: Request) -> Scoring:
    """The runtime and the served model of a scoring request (503 when no model is loaded).

    Not a FastAPI dependency on purpose: ``/predict`` is the hot path and FastAPI's dependency
    resolution costs tens of microseconds per dependency per request (measured). The optional
    prediction token is checked before the body is read, by ``serving.middleware``.
    """
    runtime: Runtime = request.app.state.runtime
    return Scoring(runtime, _served_model(runtime))
