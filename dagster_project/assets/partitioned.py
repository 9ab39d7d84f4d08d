"""Daily-partitioned new data and per-day drift: the scaled shape of ``new_tickets``.

Each partition is one UTC day (``datasets/new_daily/<day>.csv``); ``drift_daily`` compares that
day alone with the reference (``monitoring/daily/<day>.json``). Both have a single-run backfill
policy: a backfill of N days is one run that reads the inputs once, e.g.
``dagster asset materialize -m dagster_project --select new_tickets_daily,drift_daily
--partition-range 2024-01-01...2024-01-07``.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from dagster_project.assets.data import new_tickets, reference_tickets
from dagster_project.resources import TicketStorage
from ticket_urgency.drift import DriftConfig
from ticket_urgency.partitions import drift_days, store_days

PARTITIONED_GROUP = "partitioned"
DAILY = DailyPartitionsDefinition(start_date="2024-01-01")


@asset(
    group_name=PARTITIONED_GROUP,
    kinds={"csv"},
    partitions_def=DAILY,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[new_tickets],
)
def new_tickets_daily(context: AssetExecutionContext, storage: TicketStorage) -> MaterializeResult:
    """The new tickets of one UTC day (datasets/new_daily/<day>.csv), cut by created_at."""
    days = list(context.partition_keys)
    slices = store_days(storage.open(), days)
    for s in slices:
        context.log.info(f"{s.day}: {s.rows} rows ({s.labelled_rows} labelled) -> {s.uri}")
    return MaterializeResult(
        metadata={
            "days": len(days),
            "dagster/row_count": sum(s.rows for s in slices),
            "per_day": MetadataValue.json([s.to_dict() for s in slices]),
        }
    )


class DailyDriftConfig(Config):  # type: ignore[misc]
    """Run configuration of the per-day drift report."""

    nannyml: bool = Field(
        default=False, description="Also run NannyML (plots); the decision does not need it."
    )


@asset(
    group_name=PARTITIONED_GROUP,
    kinds={"nannyml"},
    partitions_def=DAILY,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[reference_tickets, new_tickets_daily],
)
def drift_daily(
    context: AssetExecutionContext, config: DailyDriftConfig, storage: TicketStorage
) -> MaterializeResult:
    """Drift of one day's new tickets against the reference (monitoring/daily/<day>.json)."""
    settings = storage.settings()
    cfg = DriftConfig(min_rows=settings.drift_min_rows, nannyml=config.nannyml)
    reports = drift_days(storage.open(), list(context.partition_keys), cfg)
    per_day: list[dict[str, Any]] = []
    for day, report in reports.items():
        if report is None:
            per_day.append({"day": day, "status": "no_rows"})
            context.log.warning(f"{day}: no new tickets; no drift report")
            continue
        per_day.append(
            {
                "day": day,
                "status": report.status,
                "drift_detected": report.drift_detected,
                "alerted_features": report.alerted_features,
                "rows": report.rows.get("new"),
                "report_uri": report.report_uri,
            }
        )
        if report.drift_detected:
            context.log.warning(f"{day}: drift detected: {report.message}")
    return MaterializeResult(
        metadata={
            "days": len(per_day),
            "days_with_drift": sum(bool(d.get("drift_detected")) for d in per_day),
            "per_day": MetadataValue.json(per_day),
        }
    )
