"""The one configuration object of a ticket_urgency process.

Every environment variable the project understands is a field here. No other module reads
``os.environ``; code receives a :class:`Settings` (or values taken from one) as an argument.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the CLI, the serving API and the Dagster code location.

    Field names map to the variables of DESIGN.md: ``TICKET_URGENCY_<FIELD>``, except for
    ``MLFLOW_TRACKING_URI`` and ``STORAGE_EMULATOR_HOST``, which keep the names their own
    libraries use.
    """

    model_config = SettingsConfigDict(
        env_prefix="TICKET_URGENCY_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
        protected_namespaces=(),
    )

    storage: str = Field(
        default="./data",
        description="Storage root: a local directory or gs://bucket[/prefix].",
    )
    mlflow_tracking_uri: str = Field(
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "mlflow_tracking_uri"),
        description="MLflow tracking/registry URI (MLflow's own variable).",
    )
    mlflow_registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "mlflow_registry_uri"),
        description="MLflow registry URI when it differs from the tracking URI.",
    )
    experiment_name: str = Field(default="ticket_urgency", description="MLflow experiment.")
    model_name: str = Field(default="ticket_urgency", description="Registered model name.")
    model_uri_override: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TICKET_URGENCY_MODEL_URI", "model_uri"),
        description="What serving resolves; default models:/<model name>/Production.",
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for /reload-model; unset refuses reloads."
    )
    predict_token: SecretStr | None = Field(
        default=None, description="Optional bearer token for the prediction endpoints."
    )
    storage_emulator_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STORAGE_EMULATOR_HOST", "storage_emulator_host"),
        description="google-cloud-storage's emulator variable (http://host:port).",
    )
    gcs_retry_seconds: float = Field(
        default=30.0, gt=0.0, description="How long GCS calls retry transient errors."
    )
    gcp_project: str | None = Field(default=None, description="GCP project for the client.")
    deployment: Literal["local", "gcs"] = Field(
        default="local", description="Dagster resource set: local or gcs."
    )
    max_text_chars: int = Field(
        default=5000, ge=100, description="Title/description characters the model reads."
    )
    review_threshold: float = Field(
        default=0.6, ge=0.0, le=1.0, description="needs_review below this confidence."
    )
    batch_limit: int = Field(default=1000, ge=1, description="Tickets per /predict/batch.")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="/predict body cap.")
    max_batch_body_bytes: int = Field(
        default=10 << 20, ge=1024, description="/predict/batch and /invocations body cap."
    )
    poll_seconds: float = Field(
        default=0.0, ge=0.0, description="Serving: poll the registry this often (0 = off)."
    )
    opentelemetry: bool = Field(
        default=False,
        description=(
            "Serving: FastAPI's native OpenTelemetry (traces/metrics/logs to the global "
            "providers). Off by default: it checks the providers on every request."
        ),
    )
    prediction_log_flush_seconds: float = Field(default=2.0, gt=0.0)
    prediction_log_batch_size: int = Field(default=500, ge=1)
    serving_urls: str = Field(
        default="",
        description="Comma-separated serving base URLs that Dagster asks to reload.",
    )
    webhook_url: str | None = Field(default=None, description="Notification webhook URL.")
    promote_tolerance: float = Field(default=0.01, ge=0.0)
    promote_recall_drop: float = Field(default=0.05, ge=0.0)
    drift_min_rows: int = Field(default=500, ge=1)
    retention_days: int = Field(
        default=0,
        ge=0,
        description="Combined set keeps new rows of the last N days by created_at (0 = all).",
    )
    daily_partitions: bool = Field(
        default=False,
        description="Dagster: also define the daily-partitioned new_tickets_daily and drift_daily.",
    )
    retrain_cooldown_hours: float = Field(default=6.0, ge=0.0)
    reload_marker: str | None = Field(
        default=None,
        description=(
            "Serving with several workers: a file shared by the workers of one `serve`; a reload "
            "rewrites it and every worker re-resolves the model. Set by `serve`, not by users."
        ),
    )
    worker_sync_seconds: float = Field(
        default=0.25, gt=0.0, description="How often a serving worker checks the reload marker."
    )
    prometheus_multiproc_dir: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"),
        description="prometheus-client's multiprocess directory (set by `serve --workers N`).",
    )
    mlflow_run_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_RUN_ID", "mlflow_run_id"),
        description="Set by `mlflow run`: training logs into this run instead of a new one.",
    )
    test_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Held-out (newest) share of training data."
    )

    @property
    def model_uri(self) -> str:
        """The model URI serving resolves (``models:/<name>/Production`` unless overridden)."""
        return self.model_uri_override or f"models:/{self.model_name}/Production"

    @property
    def serving_url_list(self) -> list[str]:
        """The serving URLs as a list, empty strings removed."""
        return [u.strip().rstrip("/") for u in self.serving_urls.split(",") if u.strip()]


def export_environment(values: dict[str, str]) -> None:
    """Set environment variables for child processes (e.g. uvicorn workers) and re-read settings.

    Only the serve command uses this, to hand worker processes values that exist per run.
    """
    import os

    os.environ.update(values)
    get_settings.cache_clear()


def disable_nannyml_telemetry() -> None:
    """Turn NannyML's usage telemetry off unless the user chose otherwise.

    The one environment write of the project, kept here with the environment reads: NannyML
    reads ``NML_DISABLE_USAGE_LOGGING`` when it is imported (and a blocked telemetry call can
    hang a machine without internet), so call this right before the lazy ``import nannyml``.
    """
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
