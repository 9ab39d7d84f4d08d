"""Retention window of the combined retraining set (``TICKET_URGENCY_RETENTION_DAYS``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import to_csv_bytes
from ticket_urgency.datasets import (
    COMBINED_META_KEY,
    build_combined,
    combined_state,
    ensure_combined,
    upload,
    within_retention,
)
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import Storage


def frame(prefix: str, days: list[str], labels: list[str] | None = None) -> pd.DataFrame:
    """Tickets created at noon of the given days."""
    n = len(days)
    return pd.DataFrame(
        {
            "ticket_id": [f"{prefix}{i}" for i in range(n)],
            "title": [f"{prefix} title {i}" for i in range(n)],
            "description": ["d"] * n,
            "source": ["web"] * n,
            "customer_tier": ["Gold"] * n,
            "label_urgency": labels or ["high", "low"] * (n // 2) + ["high"] * (n % 2),
            "created_at": [f"{d}T12:00:00Z" if d else "" for d in days],
        }
    )


REFERENCE = frame("r", ["2026-01-01"] * 4)
# ten days of new data, one row a day, the last (2026-03-10) unlabelled
NEW = frame("n", [f"2026-03-{d:02d}" for d in range(1, 11)])
NEW.loc[9, "label_urgency"] = ""


def test_window_is_anchored_at_the_newest_row_not_the_clock() -> None:
    kept = within_retention(NEW, 3)
    assert kept["created_at"].str[:10].tolist() == ["2026-03-08", "2026-03-09", "2026-03-10"]
    assert within_retention(NEW, 0) is NEW  # 0 = unbounded


def test_combined_keeps_the_whole_reference_and_the_labelled_new_rows_in_the_window() -> None:
    combined = build_combined(REFERENCE, NEW, retention_days=3)
    assert combined["ticket_id"].tolist() == ["r0", "r1", "r2", "r3", "n7", "n8"]
    assert len(build_combined(REFERENCE, NEW)) == 4 + 9


def test_rows_without_a_time_fall_outside_a_window_and_untimed_data_is_kept() -> None:
    new = frame("n", ["2026-03-01", "", "2026-03-02"])
    assert within_retention(new, 1)["ticket_id"].tolist() == ["n2"]
    untimed = new.drop(columns="created_at")
    assert within_retention(untimed, 1) is untimed


def test_rebuild_applies_the_window_and_a_changed_window_makes_combined_stale(
    any_storage: Storage,
) -> None:
    report = upload(any_storage, REFERENCE, NEW, retention_days=5)
    assert report.combined_rows == 4 + 4  # 03-06 .. 03-09 labelled (03-10 is unlabelled)
    meta = json.loads(any_storage.read_bytes(COMBINED_META_KEY))
    assert meta["retention_days"] == 5
    assert combined_state(any_storage, retention_days=5).fresh
    state = combined_state(any_storage, retention_days=0)
    assert not state.fresh and "retention" in state.reason
    combined, rebuilt = ensure_combined(any_storage, retention_days=0)
    assert rebuilt and len(combined) == 4 + 9
    _, rebuilt = ensure_combined(any_storage, retention_days=0)
    assert not rebuilt


def test_upload_cli_reads_the_retention_setting(
    any_storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKET_URGENCY_RETENTION_DAYS", "2")
    get_settings.cache_clear()
    ref_path, new_path = tmp_path / "ref.csv", tmp_path / "new.csv"
    ref_path.write_bytes(to_csv_bytes(REFERENCE))
    new_path.write_bytes(to_csv_bytes(NEW))
    result = CliRunner().invoke(
        app, ["upload", "--reference", str(ref_path), "--new", str(new_path), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["combined_rows"] == 4 + 1  # 03-09 (03-10 unlabelled)
