"""What one API process runs: settings, metrics, the model service, the batcher and the log."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.batcher import MicroBatcher
from serving.metrics import Metrics
from serving.state import ModelService, public_version
from ticket_urgency.prediction_log import PredictionLogger, Served
from ticket_urgency.predictor import LoadedModel
from ticket_urgency.settings import Settings


@dataclass
class Runtime:
    """The services of one app instance (kept on ``app.state.runtime``)."""

    settings: Settings
    metrics: Metrics
    service: ModelService
    batcher: MicroBatcher
    prediction_log: PredictionLogger | None

    async def predict(
        self, model: LoadedModel, rows: Sequence[Mapping[str, Any]], endpoint: str
    ) -> tuple[list[str], np.ndarray]:
        """Score ``rows`` (dicts with the four ticket fields) with ``model``; log and count them.

        Returns:
            The predicted labels and the probability matrix.
        """
        columns = {
            "title": [r["title"] for r in rows],
            "description": [r["description"] for r in rows],
            "source": [r["source"] for r in rows],
            "customer_tier": [r["customer_tier"] for r in rows],
        }
        proba = await self.batcher.predict(model, columns, len(rows))
        labels = model.labels(proba)
        now = time.time()
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            self.metrics.count_prediction(label, n)
        if self.prediction_log is not None:
            version = model.version
            classes = model.classes
            self.prediction_log.submit(
                [
                    Served(row, label, p, classes, version, now, endpoint)
                    for row, label, p in zip(rows, labels, proba.tolist(), strict=True)
                ]
            )
        return labels, proba

    def present(
        self,
        model: LoadedModel,
        labels: list[str],
        proba: np.ndarray,
        ticket_ids: Sequence[str | None],
    ) -> list[dict[str, Any]]:
        """Build the ``/predict`` answers (one dict per row)."""
        threshold = self.settings.review_threshold
        version = public_version(model.version)
        classes = model.classes
        confidences = proba.max(axis=1).tolist()
        out = []
        for label, conf, row, tid in zip(
            labels, confidences, proba.tolist(), ticket_ids, strict=True
        ):
            item: dict[str, Any] = {
                "prediction": label,
                "confidence": conf,
                "probabilities": dict(zip(classes, row, strict=True)),
                "needs_review": conf < threshold,
                "model_version": version,
            }
            if tid is not None:
                item["ticket_id"] = tid
            out.append(item)
        return out
