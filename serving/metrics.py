"""Prometheus metrics of one serving process (prometheus-client)."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    """The API's metrics, registered on a registry of their own (one per app).

    Args:
        multiproc_dir: prometheus-client's multiprocess directory when several workers serve
            (then ``render`` aggregates all workers).
    """

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ticket_urgency_http_requests_total",
            "HTTP requests by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ticket_urgency_http_request_duration_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "ticket_urgency_predictions_total",
            "Served predictions by predicted class.",
            ["predicted_class"],
            registry=r,
        )
        self.model_version = Gauge(
            "ticket_urgency_model_version",
            "Registry version of the served model (0 = none loaded).",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.model_loaded = Gauge(
            "ticket_urgency_model_loaded",
            "1 when a model is loaded.",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.reloads = Counter(
            "ticket_urgency_model_reloads_total",
            "Model reload attempts by result (reloaded, unchanged, failed) and trigger.",
            ["result", "trigger"],
            registry=r,
        )
        self.log_failures = Counter(
            "ticket_urgency_prediction_log_failures_total",
            "Prediction-log writes that failed (e.g. storage outage).",
            registry=r,
        )
        self.log_failed_predictions = Counter(
            "ticket_urgency_prediction_log_failed_predictions_total",
            "Predictions in failed prediction-log writes (retried later).",
            registry=r,
        )
        self.log_dropped = Counter(
            "ticket_urgency_prediction_log_dropped_total",
            "Predictions dropped from the prediction log because its queue was full.",
            registry=r,
        )
        self.log_written = Counter(
            "ticket_urgency_prediction_log_written_total",
            "Predictions written to the prediction log.",
            registry=r,
        )
        self.batch_rows = Histogram(
            "ticket_urgency_model_batch_rows",
            "Rows per model call (micro-batching of concurrent requests).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}
        self._class_children: dict[str, Any] = {}

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency."""
        key = (endpoint, method, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(
                endpoint, method, str(status)
            )
        child.inc()
        lat = self._latency_children.get(endpoint)
        if lat is None:
            lat = self._latency_children[endpoint] = self.latency.labels(endpoint)
        lat.observe(seconds)

    def count_prediction(self, label: str, n: int = 1) -> None:
        """Count predictions of one class."""
        child = self._class_children.get(label)
        if child is None:
            child = self._class_children[label] = self.predictions.labels(label)
        child.inc(n)

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        if self.multiproc_dir:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiproc_dir)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def mark_process_dead(self, pid: int) -> None:
        """Tell the multiprocess collector that a worker exited."""
        if self.multiproc_dir:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.multiproc_dir)
