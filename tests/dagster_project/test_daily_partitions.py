"""Daily partitions: ``new_tickets_daily`` and per-day ``drift_daily``, backfilled locally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from dagster_project.assets.partitioned import DAILY, drift_daily, new_tickets_daily
from dagster_project.definitions import build_defs
from dagster_project.resources import build_resources
from ticket_urgency.contract import parse_tickets
from ticket_urgency.datasets import upload
from ticket_urgency.generate import generate_dataset
from ticket_urgency.partitions import day_key, drift_key, load_day, rows_of_day
from ticket_urgency.settings import Settings, get_settings
from ticket_urgency.storage import LocalStorage, Storage

DAYS = ["2024-03-01", "2024-03-02", "2024-03-03"]
EMPTY_DAY = "2024-03-04"


def spread_over_days(new: pd.DataFrame, days: list[str]) -> pd.DataFrame:
    """Give the rows equal consecutive shares of ``days`` (minutes apart within a day)."""
    per_day = -(-len(new) // len(days))
    new = new.copy()
    new["created_at"] = [
        f"{days[i // per_day]}T{(i % per_day) // 60:02d}:{i % 60:02d}:00Z" for i in range(len(new))
    ]
    return new


def store_days_of_data(storage: Storage, new_rows: int) -> pd.DataFrame:
    """Upload a reference and ``new_rows`` new tickets spread over :data:`DAYS`."""
    reference, new = generate_dataset(1000, new_rows, drift="none", seed=3)
    new = spread_over_days(new, DAYS)
    upload(storage, reference, new)
    return new


def test_rows_of_day_uses_utc_days() -> None:
    df = pd.DataFrame({"created_at": ["2024-03-01T23:59:59Z", "2024-03-02T00:30:00+01:00", ""]})
    assert len(rows_of_day(df, "2024-03-01")) == 2  # 00:30+01:00 is 23:30 UTC the day before
    assert rows_of_day(df.drop(columns="created_at"), "2024-03-01").empty


def test_daily_assets_are_defined_only_when_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    default = build_defs(get_settings()).resolve_asset_graph().get_all_asset_keys()
    assert new_tickets_daily.key not in default  # `--select '*'` keeps working unpartitioned
    monkeypatch.setenv("TICKET_URGENCY_DAILY_PARTITIONS", "true")
    get_settings.cache_clear()
    keys = build_defs(get_settings()).resolve_asset_graph().get_all_asset_keys()
    assert {new_tickets_daily.key, drift_daily.key} <= keys
    assert set(DAYS) <= set(DAILY.get_partition_keys())  # one key per UTC day


def test_partition_of_one_day_in_process(local_storage: LocalStorage) -> None:
    new = store_days_of_data(local_storage, 300)
    resources = build_resources(get_settings())
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [new_tickets_daily], resources=resources, instance=instance, partition_key=DAYS[1]
        )
    assert result.success
    day = load_day(local_storage, DAYS[1])
    assert sorted(day["ticket_id"]) == sorted(rows_of_day(new, DAYS[1])["ticket_id"])
    assert not local_storage.exists(day_key(DAYS[0]))  # only the requested partition


def test_backfill_of_several_days_with_the_dagster_cli(
    local_storage: LocalStorage, tmp_path: Path
) -> None:
    """``dagster asset materialize --partition-range``: one run for four days (one empty)."""
    new = store_days_of_data(local_storage, 1800)  # 600 a day: above drift_min_rows
    env = {**os.environ, "TICKET_URGENCY_DAILY_PARTITIONS": "true"}
    exe = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [
            str(exe),
            "asset",
            "materialize",
            "-m",
            "dagster_project",
            "--select",
            "new_tickets_daily,drift_daily",
            "--partition-range",
            f"{DAYS[0]}...{EMPTY_DAY}",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for day in DAYS:
        stored = parse_tickets(local_storage.read_bytes(day_key(day)), day)
        assert len(stored) == 600
        assert set(stored["ticket_id"]) == set(rows_of_day(new, day)["ticket_id"])
        report = json.loads(local_storage.read_bytes(drift_key(day)))
        assert report["rows"]["new"] == 600
        assert report["status"] in ("drift", "no_drift")
        assert report["drift_detected"] is False  # drift="none": no day should alert
    assert not local_storage.exists(day_key(EMPTY_DAY))
    assert not local_storage.exists(drift_key(EMPTY_DAY))


def test_daily_partitions_on_gcs(gcs_storage: Storage, gcs_settings: Settings) -> None:
    new = store_days_of_data(gcs_storage, 300)
    resources = build_resources(gcs_settings)
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [new_tickets_daily], resources=resources, instance=instance, partition_key=DAYS[2]
        )
    assert result.success
    assert gcs_storage.uri(day_key(DAYS[2])).startswith("gs://")
    assert len(load_day(gcs_storage, DAYS[2])) == len(rows_of_day(new, DAYS[2]))
