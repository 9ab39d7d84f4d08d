"""The loop assets: daily served_tickets partitions into new data, batch_predictions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from dagster_project.assets.loop import batch_predictions, is_latest, served_tickets
from dagster_project.definitions import build_defs
from ticket_urgency.contract import to_csv_bytes
from ticket_urgency.datasets import NEW_KEY, load_dataset
from ticket_urgency.generate import generate_dataset
from ticket_urgency.ingest import day_bounds
from ticket_urgency.prediction_log import Served, to_record, write_records
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import LocalStorage


def log_day(storage: LocalStorage, tickets: pd.DataFrame, day: str) -> None:
    start, _ = day_bounds(day)
    records = []
    for i, row in enumerate(tickets.to_dict("records")):
        ticket = {k: row[k] for k in ("ticket_id", "title", "description", "source")}
        ticket["customer_tier"] = row["customer_tier"]
        at = (start + timedelta(seconds=i)).timestamp()
        item = Served(ticket, "high", [0.3, 0.7], ["normal", "high"], "1", at, "predict")
        records.append(to_record(item))
    write_records(storage, records)


def meta(result: Any, key: str) -> dict[str, Any]:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_served_tickets_partitions_ingest_their_day_once(
    uploaded: LocalStorage,
    resources: dict[str, Any],
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKET_URGENCY_DRIFT_MIN_ROWS", "50")
    get_settings.cache_clear()
    _, served = generate_dataset(50, 200, seed=21)
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()  # newest partition
    log_day(uploaded, served.iloc[:80], "2026-03-01")
    log_day(uploaded, served.iloc[80:], yesterday)
    before = len(load_dataset(uploaded, NEW_KEY))
    no_drift = {"ops": {"served_tickets": {"config": {"drift": False}}}}

    first = materialize(
        [served_tickets],
        partition_key="2026-03-01",
        resources=resources,
        instance=instance,
        run_config=no_drift,
    )
    assert first.success
    m = meta(first, "served_tickets")
    assert (m["predictions"], m["added"], m["unchanged"]) == (80, 80, 0)
    assert m["new_rows"] == before + 80 and m["model_versions"] == {"1": 80}
    assert "drift_detected" not in m

    again = materialize(
        [served_tickets],
        partition_key="2026-03-01",
        resources=resources,
        instance=instance,
        run_config=no_drift,
    )
    assert (meta(again, "served_tickets")["added"], meta(again, "served_tickets")["unchanged"]) == (
        0,
        80,
    )

    # the latest partition also runs monitoring on the new data it completed
    latest = materialize(
        [served_tickets],
        partition_key=yesterday,
        resources=resources,
        instance=instance,
        run_config={"ops": {"served_tickets": {"config": {"drift": True, "nannyml": False}}}},
    )
    m = meta(latest, "served_tickets")
    assert (m["predictions"], m["added"]) == (120, 120)
    assert m["drift_status"] in ("ok", "drift", "insufficient_data") or "drift_detected" in m
    assert str(m["drift_report_uri"]).endswith(".json")
    assert len(load_dataset(uploaded, NEW_KEY)) == before + 200


def test_is_latest() -> None:
    now = datetime(2026, 12, 4, 1, tzinfo=UTC)
    assert is_latest("2026-12-03", now) and is_latest("2026-12-04", now)
    assert not is_latest("2026-12-02", now)


def test_batch_predictions_without_input_records_that(
    resources: dict[str, Any], instance: DagsterInstance, tmp_path: Path
) -> None:
    result = materialize([batch_predictions], resources=resources, instance=instance)
    assert meta(result, "batch_predictions")["status"] == "no input configured"

    src = tmp_path / "tickets.csv"
    src.write_bytes(to_csv_bytes(generate_dataset(20, 0, seed=1)[0]))
    failed = materialize(
        [batch_predictions],
        resources=resources,
        instance=instance,
        run_config={"ops": {"batch_predictions": {"config": {"input_path": str(src)}}}},
        raise_on_error=False,
    )
    assert not failed.success  # nothing promoted yet: the run fails and says why
    messages = " ".join(
        e.event_specific_data.error.to_string()  # type: ignore[union-attr]
        for e in failed.all_events
        if e.is_step_failure
    )
    assert "train and promote a model first" in messages
    assert not (tmp_path / "tickets.scored.csv").exists()


def test_loop_assets_are_registered() -> None:
    plain = build_defs(get_settings()).get_repository_def().asset_graph.get_all_asset_keys()
    names = {k.to_user_string() for k in plain}
    assert "batch_predictions" in names and "served_tickets" not in names
    daily = get_settings().model_copy(update={"daily_partitions": True})
    keys = build_defs(daily).get_repository_def().asset_graph.get_all_asset_keys()
    assert "served_tickets" in {k.to_user_string() for k in keys}
