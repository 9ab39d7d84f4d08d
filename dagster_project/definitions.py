"""The Dagster code location: ``dagster dev -m dagster_project`` loads :data:`defs`."""

from dagster import Definitions, in_process_executor, multiprocess_executor

from dagster_project.assets.data import combined_tickets, new_tickets, reference_tickets
from dagster_project.assets.loop import batch_predictions, served_tickets
from dagster_project.assets.model import production_model, ticket_urgency_model
from dagster_project.assets.monitoring import drift_report
from dagster_project.assets.partitioned import drift_daily, new_tickets_daily
from dagster_project.checks import DATA_CHECKS, MODEL_CHECKS
from dagster_project.jobs import drift_monitoring_job, retrain_job
from dagster_project.resources import build_resources
from dagster_project.schedules import daily_drift_schedule
from dagster_project.sensors import drift_retrain_sensor
from ticket_urgency.settings import Settings, get_settings

ASSETS = [
    reference_tickets,
    new_tickets,
    combined_tickets,
    drift_report,
    ticket_urgency_model,
    production_model,
    batch_predictions,
]
# Off by default: a partitioned asset needs a partition key, so with these defined
# `dagster asset materialize --select '*'` would refuse to run the unpartitioned graph.
DAILY_ASSETS = [new_tickets_daily, drift_daily, served_tickets]


def build_defs(settings: Settings | None = None) -> Definitions:
    """Build the definitions of ``settings.deployment``.

    ``local`` runs every step in one process (SQLite has one writer); ``gcs`` runs steps in
    separate processes (with an MLflow server or Postgres behind ``MLFLOW_TRACKING_URI``).
    """
    s = settings or get_settings()
    return Definitions(
        assets=[*ASSETS, *(DAILY_ASSETS if s.daily_partitions else [])],
        asset_checks=[*DATA_CHECKS, *MODEL_CHECKS],
        jobs=[drift_monitoring_job, retrain_job],
        schedules=[daily_drift_schedule],
        sensors=[drift_retrain_sensor],
        resources=build_resources(s),
        executor=in_process_executor if s.deployment == "local" else multiprocess_executor,
    )


defs = build_defs()
