"""Sensors: retrain when the latest drift report says drift (at most once per cooldown)."""

import json
from datetime import UTC, datetime
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from dagster_project.jobs import retrain_job
from dagster_project.resources import TicketStorage
from ticket_urgency.drift import latest_report
from ticket_urgency.pipeline import decide_retrain


def parse_cursor(cursor: str | None) -> dict[str, Any]:
    """Decode the sensor cursor: ``{"last_report": uri, "last_request_at": iso}``."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@sensor(
    job=retrain_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests retraining (and the promotion gate) when the newest drift report "
    "says drift; at most once per TICKET_URGENCY_RETRAIN_COOLDOWN_HOURS.",
)
def drift_retrain_sensor(context: SensorEvaluationContext, storage: TicketStorage) -> SensorResult:
    """Request the retrain job for a new drifting report, outside the cooldown."""
    settings = storage.settings()
    state = parse_cursor(context.cursor)
    report = latest_report(storage.open())
    last_request = state.get("last_request_at")
    now = datetime.now(UTC)
    report_key = str(report.get("report_uri") or report.get("created_at")) if report else None
    decision = decide_retrain(
        report_key=report_key,
        drift_detected=bool(report and report.get("drift_detected")),
        last_report_key=state.get("last_report"),
        last_request_at=datetime.fromisoformat(last_request) if last_request else None,
        now=now,
        cooldown_hours=settings.retrain_cooldown_hours,
    )
    if decision.handled and report_key:
        state["last_report"] = report_key
    if not decision.request:
        return SensorResult(skip_reason=SkipReason(decision.reason), cursor=json.dumps(state))
    state["last_request_at"] = now.isoformat()
    assert report is not None
    tags = {"ticket_urgency/trigger": "drift", "ticket_urgency/drift_report": str(report_key)}
    features = ",".join(report.get("alerted_features") or [])[:200]
    if features:
        tags["ticket_urgency/alerted_features"] = features
    return SensorResult(
        run_requests=[RunRequest(run_key=report_key, tags=tags)],
        cursor=json.dumps(state),
    )
