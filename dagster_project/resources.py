"""Dagster resources: ticket storage (local or GCS), MLflow, serving reload and notifications.

Every resource takes its defaults from :func:`ticket_urgency.settings.get_settings`, so a run
with no variables set works on the local defaults. One resource set per deployment
(``TICKET_URGENCY_DEPLOYMENT``: ``local`` or ``gcs``) is built by :func:`build_resources`.
"""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource, EnvVar, MetadataValue
from pydantic import Field, SecretStr

from ticket_urgency.notify import CallOutcome, notify, reload_serving
from ticket_urgency.settings import Settings, get_settings
from ticket_urgency.storage import Storage, open_storage


class TicketStorage(ConfigurableResource):  # type: ignore[misc]
    """The storage root holding datasets, drift reports and MLflow artifacts."""

    root: str = Field(description="Local directory or gs://bucket[/prefix].")

    def settings(self) -> Settings:
        """Return the process settings with this storage root."""
        return get_settings().model_copy(update={"storage": self.root})

    def open(self) -> Storage:
        """Open the storage."""
        return open_storage(self.root, self.settings())


class MLflowResource(ConfigurableResource):  # type: ignore[misc]
    """Where MLflow tracks runs and registers models, and under which names."""

    tracking_uri: str = Field(description="MLflow tracking URI (MLFLOW_TRACKING_URI).")
    registry_uri: str | None = Field(default=None, description="Registry URI if different.")
    experiment_name: str = Field(description="MLflow experiment.")
    model_name: str = Field(description="Registered model name.")

    def apply(self, settings: Settings) -> Settings:
        """Return ``settings`` with this resource's MLflow values."""
        return settings.model_copy(
            update={
                "mlflow_tracking_uri": self.tracking_uri,
                "mlflow_registry_uri": self.registry_uri,
                "experiment_name": self.experiment_name,
                "model_name": self.model_name,
            }
        )

    def run_link(self, run_id: str) -> MetadataValue:
        """Link to a run: its UI page on an HTTP tracking server, else the ``runs:/`` URI.

        With a SQLite or file store there is no page to link to; ``mlflow ui`` with the same
        tracking URI shows the run under the experiment.
        """
        base = self.tracking_uri.rstrip("/")
        if base.startswith(("http://", "https://")):
            try:
                from ticket_urgency.mlflow_utils import client

                experiment_id = (
                    client(self.apply(get_settings())).get_run(run_id).info.experiment_id
                )
            except Exception:  # a link is nice to have; never fail a run for it
                return MetadataValue.text(f"runs:/{run_id}")
            return MetadataValue.url(f"{base}/#/experiments/{experiment_id}/runs/{run_id}")
        return MetadataValue.text(f"runs:/{run_id} ({self.tracking_uri})")


class ServingResource(ConfigurableResource):  # type: ignore[misc]
    """The serving API instances to reload after a promotion."""

    urls: list[str] = Field(default_factory=list, description="Serving base URLs.")
    admin_token: str | None = Field(
        default=None, description="Bearer token for /reload-model (from an EnvVar)."
    )
    timeout_seconds: float = Field(default=60.0, description="Per-instance reload timeout.")

    def reload(self) -> list[CallOutcome]:
        """Ask every configured instance to reload (never raises)."""
        return reload_serving(list(self.urls), self.admin_token, timeout=self.timeout_seconds)


class NotifierResource(ConfigurableResource):  # type: ignore[misc]
    """An optional webhook that receives a JSON POST on notable events."""

    webhook_url: str | None = Field(default=None, description="Webhook URL; unset = silent.")
    timeout_seconds: float = Field(default=10.0)

    def send(self, event: str, payload: dict[str, Any]) -> CallOutcome | None:
        """Post the event (never raises); None when no webhook is configured."""
        return notify(self.webhook_url, event, payload, timeout=self.timeout_seconds)


def _secret(value: SecretStr | None) -> bool:
    return value is not None and bool(value.get_secret_value())


def build_resources(settings: Settings | None = None) -> dict[str, Any]:
    """Build the resource set of ``settings.deployment`` (``local`` or ``gcs``).

    The admin token is an ``EnvVar`` (resolved at run time, never shown in the UI) only when
    it is set, so an unset token never fails a run: reloads are then refused by the API
    (403) and recorded as such.
    """
    s = settings or get_settings()
    storage: TicketStorage
    if s.deployment == "gcs" or s.storage.startswith("gs://"):
        if not s.storage.startswith("gs://"):
            raise ValueError(
                f"deployment 'gcs' needs TICKET_URGENCY_STORAGE=gs://bucket, not {s.storage!r}"
            )
        from dagster_gcp import GCSResource  # heavy import (BigQuery too): only when used

        from dagster_project.gcs import GCSTicketStorage

        storage = GCSTicketStorage(root=s.storage, gcs=GCSResource(project=s.gcp_project))
    else:
        storage = TicketStorage(root=s.storage)
    token: Any = EnvVar("TICKET_URGENCY_ADMIN_TOKEN") if _secret(s.admin_token) else None
    return {
        "storage": storage,
        "mlflow": MLflowResource(
            tracking_uri=s.mlflow_tracking_uri,
            registry_uri=s.mlflow_registry_uri,
            experiment_name=s.experiment_name,
            model_name=s.model_name,
        ),
        "serving": ServingResource(urls=s.serving_url_list, admin_token=token),
        "notifier": NotifierResource(webhook_url=s.webhook_url or None),
    }
