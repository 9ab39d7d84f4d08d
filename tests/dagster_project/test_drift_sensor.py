"""The drift sensor, evaluated with build_sensor_context on real drift reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context

from dagster_project.sensors import drift_retrain_sensor
from ticket_urgency.datasets import upload
from ticket_urgency.drift import DriftConfig, run_drift
from ticket_urgency.generate import generate_dataset
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import LocalStorage

FAST = DriftConfig(min_rows=100, nannyml=False)


def _evaluate(resources: dict[str, Any], cursor: str | None) -> SensorResult:
    with DagsterInstance.ephemeral() as instance:
        ctx = build_sensor_context(
            cursor=cursor, resources={"storage": resources["storage"]}, instance=instance
        )
        result = drift_retrain_sensor(ctx)
    assert isinstance(result, SensorResult)
    return result


def _report(storage: LocalStorage, minutes: int) -> str:
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    report = run_drift(get_settings(), storage, now=now, config=FAST, log_mlflow=False)
    return str(report.report_uri)


@pytest.fixture
def drifting(local_storage: LocalStorage) -> LocalStorage:
    reference, new = generate_dataset(300, 300, drift="all", seed=3)
    upload(local_storage, reference, new)
    return local_storage


def test_no_report_no_request(local_storage: LocalStorage, resources: dict[str, Any]) -> None:
    result = _evaluate(resources, None)
    assert not result.run_requests
    assert result.skip_reason is not None
    assert "no drift report" in str(result.skip_reason.skip_message)


def test_drift_requests_once_then_respects_the_cooldown(
    drifting: LocalStorage, resources: dict[str, Any]
) -> None:
    first = _report(drifting, 0)
    result = _evaluate(resources, None)
    (request,) = result.run_requests or []
    assert request.run_key == first
    assert request.tags["ticket_urgency/trigger"] == "drift"
    cursor = json.loads(result.cursor or "{}")
    assert cursor["last_report"] == first

    again = _evaluate(resources, result.cursor)  # same report: handled
    assert not again.run_requests

    _report(drifting, 5)  # a newer drifting report inside the 6 h cooldown
    cooling = _evaluate(resources, result.cursor)
    assert not cooling.run_requests
    assert "cooling down" in str(cooling.skip_reason.skip_message)  # type: ignore[union-attr]
    assert json.loads(cooling.cursor or "{}")["last_report"] == first  # held back, not dropped

    expired = json.loads(cooling.cursor or "{}")
    expired["last_request_at"] = (datetime.now(UTC) - timedelta(hours=7)).isoformat()
    after = _evaluate(resources, json.dumps(expired))
    assert len(after.run_requests or []) == 1


def test_report_without_drift_requests_nothing(
    local_storage: LocalStorage, resources: dict[str, Any]
) -> None:
    reference, new = generate_dataset(300, 300, drift="none", seed=4)
    upload(local_storage, reference, new)
    report = run_drift(get_settings(), local_storage, config=FAST, log_mlflow=False)
    assert not report.drift_detected
    result = _evaluate(resources, None)
    assert not result.run_requests
    assert "no drift" in str(result.skip_reason.skip_message)  # type: ignore[union-attr]
