"""Closing the loop in Dagster: served tickets become new data; batch scoring of a file.

``served_tickets`` is daily-partitioned (UTC days of the prediction log, the same partitions as
``new_tickets_daily``/``drift_daily``). A partitioned asset cannot share an implicit job with
the unpartitioned graph without a partition key, so, like those, it is defined only with
``TICKET_URGENCY_DAILY_PARTITIONS=true`` and ``dagster asset materialize -m dagster_project
--select '*'`` keeps working unchanged. ``batch_predictions`` is unpartitioned and part of the
main graph; it does nothing until an input is configured.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from dagster_project.resources import MLflowResource, TicketStorage
from ticket_urgency.batch import predict_file
from ticket_urgency.drift import DriftConfig, NoNewDataError, run_drift
from ticket_urgency.ingest import day_bounds, ingest_predictions

LOOP_GROUP = "loop"
SERVED_PARTITIONS = DailyPartitionsDefinition(start_date="2024-01-01")
"""One partition per UTC day of ``predictions/<date>/``."""


class ServedTicketsConfig(Config):  # type: ignore[misc]
    """Run configuration of ``served_tickets``."""

    drift: bool = Field(
        default=True,
        description="After ingesting the newest partition of the run, write a drift report "
        "on the new data (monitoring runs on the latest partitions).",
    )
    nannyml: bool = Field(default=True, description="Run NannyML inside that drift report.")


def is_latest(partition_key: str, now: datetime | None = None) -> bool:
    """Whether ``partition_key`` is yesterday or today (UTC): the partitions worth monitoring."""
    today = (now or datetime.now(UTC)).date()
    start, _ = day_bounds(partition_key)
    return start.date() >= today - timedelta(days=1)


@asset(
    group_name=LOOP_GROUP,
    kinds={"csv"},
    partitions_def=SERVED_PARTITIONS,
)
def served_tickets(
    context: AssetExecutionContext,
    config: ServedTicketsConfig,
    storage: TicketStorage,
    mlflow: MLflowResource,
) -> MaterializeResult:
    """One UTC day of served predictions, ingested into datasets/new_tickets.csv (idempotent)."""
    window = context.partition_time_window
    start, end = window.start, window.end
    store = storage.open()
    report = ingest_predictions(store, start, end)
    context.log.info(
        f"{context.partition_key}: {report.predictions} predictions -> {report.added} added, "
        f"{report.replaced} replaced, {report.unchanged} unchanged, {report.dropped} dropped"
    )
    meta: dict[str, Any] = {
        "predictions": report.predictions,
        "dagster/row_count": report.rows,
        "added": report.added,
        "replaced": report.replaced,
        "unchanged": report.unchanged,
        "dropped": report.dropped,
        "invalid": report.invalid,
        "new_rows": report.new_rows,
        "combined_rows": report.combined_rows,
        "model_versions": MetadataValue.json(report.model_versions),
        "new_uri": MetadataValue.path(report.new_uri),
    }
    last_key = context.partition_key_range.end if context.has_partition_key_range else None
    newest_in_run = last_key is None or last_key == context.partition_key
    if config.drift and report.predictions and newest_in_run and is_latest(context.partition_key):
        settings = mlflow.apply(storage.settings())
        cfg = DriftConfig(min_rows=settings.drift_min_rows, nannyml=config.nannyml)
        try:
            drift = run_drift(settings, store, config=cfg, progress=context.log.info)
        except NoNewDataError as exc:
            context.log.warning(str(exc))
        else:
            meta["drift_detected"] = drift.drift_detected
            meta["drift_status"] = drift.status
            meta["drift_report_uri"] = MetadataValue.path(drift.report_uri or "")
            model = drift.model
            for kind in ("estimated_performance", "realized_performance"):
                section = model.get(kind)
                if isinstance(section, dict) and "f1_macro" in section:
                    meta[f"{kind.split('_')[0]}_f1_macro"] = float(section["f1_macro"])
    return MaterializeResult(metadata=meta)


class BatchPredictionsConfig(Config):  # type: ignore[misc]
    """Run configuration of ``batch_predictions``."""

    input_path: str = Field(
        default="",
        description="Local ticket CSV to score; empty = nothing to do (the asset records that).",
    )
    output_path: str = Field(
        default="", description="Where to write the scored CSV; default <input>.scored.csv."
    )
    model_uri: str | None = Field(
        default=None, description="Registry URI; default the Production model."
    )


@asset(group_name=LOOP_GROUP, kinds={"csv", "mlflow"})
def batch_predictions(
    context: AssetExecutionContext,
    config: BatchPredictionsConfig,
    storage: TicketStorage,
    mlflow: MLflowResource,
) -> MaterializeResult:
    """A configured ticket CSV scored by the Production model (prediction, confidence...)."""
    if not config.input_path:
        context.log.info("no input_path configured; nothing to score")
        return MaterializeResult(metadata={"status": "no input configured"})
    src = Path(config.input_path)
    out = Path(config.output_path) if config.output_path else src.with_suffix(".scored.csv")
    settings = mlflow.apply(storage.settings())
    result = predict_file(settings, src, out, model_uri=config.model_uri)
    return MaterializeResult(
        metadata={
            "status": "scored",
            "input": MetadataValue.path(result.input),
            "output": MetadataValue.path(result.output),
            "dagster/row_count": result.rows,
            "model_uri": result.model_uri,
            "model_version": result.model_version,
            "needs_review": result.needs_review,
            "predictions": MetadataValue.json(result.predictions),
            "seconds": result.seconds,
        }
    )
