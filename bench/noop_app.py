"""A no-op FastAPI app with the same request model as ``POST /predict`` (the throughput ceiling).

It parses and validates the body with :class:`serving.schemas.TicketIn` exactly like
``/predict`` does, and answers a constant prediction encoded the same way (orjson), so the
difference between it and the real API is the model work, the prediction log and the metrics.

Run: ``uvicorn bench.noop_app:app --port 8002 --workers 1``.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Response

from serving.schemas import PredictionOut, TicketIn

app = FastAPI(title="no-op")

_ANSWER = {
    "prediction": "low",
    "confidence": 1.0,
    "probabilities": {"low": 1.0},
    "needs_review": False,
    "model_version": 1,
}


@app.post("/predict", response_model=PredictionOut)
async def predict(ticket: TicketIn) -> Response:
    """Validate the ticket like /predict and answer a constant (orjson, like /predict)."""
    return Response(orjson.dumps(_ANSWER), media_type="application/json")


@app.get("/ready")
async def ready() -> dict[str, str]:
    """Always ready."""
    return {"status": "ready"}
