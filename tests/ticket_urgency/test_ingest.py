"""Served predictions become new data: log -> rows, idempotent ingest, late labels, the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import ID_COLUMN, LABEL_COLUMN
from ticket_urgency.datasets import (
    COMBINED_KEY,
    NEW_KEY,
    DatasetMissingError,
    load_dataset,
    upload,
)
from ticket_urgency.generate import generate_dataset
from ticket_urgency.ingest import (
    CONFIDENCE_COLUMN,
    PREDICTED_COLUMN,
    ROW_COLUMNS,
    VERSION_COLUMN,
    day_bounds,
    ingest_predictions,
    log_to_rows,
)
from ticket_urgency.prediction_log import Served, read_prediction_log, to_record, write_records
from ticket_urgency.storage import Storage

CLASSES = ["low", "medium", "high", "critical"]


def served(ticket: dict[str, str], at: datetime, version: str = "1") -> Served:
    return Served(ticket, "high", [0.1, 0.2, 0.6, 0.1], CLASSES, version, at.timestamp(), "predict")


def log_day(storage: Storage, tickets: pd.DataFrame, day: str, with_ids: bool) -> list[dict]:
    """Log one served prediction per ticket on ``day`` (ids on the request or derived)."""
    start, _ = day_bounds(day)
    records = []
    for i, row in enumerate(tickets.to_dict("records")):
        ticket = {k: row[k] for k in ("title", "description", "source", "customer_tier")}
        if with_ids:
            ticket["ticket_id"] = row["ticket_id"]
        at = start.replace(hour=8, minute=i % 60, second=i // 60 % 60, microsecond=i)
        records.append(to_record(served(ticket, at)))
    write_records(storage, records)
    return records


@pytest.fixture(scope="module")
def tickets() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_dataset(300, 120, seed=11)


@pytest.fixture
def stored(local_storage: Storage, tickets: tuple[pd.DataFrame, pd.DataFrame]) -> Storage:
    upload(local_storage, tickets[0], None)
    return local_storage


def test_log_to_rows_keeps_ids_derives_missing_ones_and_skips_contract_breakers() -> None:
    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    good = {"title": "Site down", "description": "500s", "source": "web", "customer_tier": "Gold"}
    records = [
        to_record(served({**good, "ticket_id": "T-1"}, at)),
        to_record(served(good, at, version="2")),  # no id: derived from content + time
        to_record(served({**good, "source": " "}, at)),  # no source: not a valid ticket
        to_record(served({**good, "title": "", "description": ""}, at)),  # no text at all
        to_record(served({**good, "ticket_id": "T-1", "title": "Site down again"}, at)),
    ]
    log = pd.DataFrame(records)
    log.loc[1, "ticket_id"] = None  # an old record without an id
    rows, invalid = log_to_rows(log)

    assert invalid == 2
    assert list(rows.columns) == list(ROW_COLUMNS)
    by_id = rows.set_index(ID_COLUMN)
    derived = to_record(served(good, at, version="2"))["ticket_id"]
    assert derived.startswith("h-")
    assert set(by_id.index) == {"T-1", derived}
    assert by_id.loc["T-1", "title"] == "Site down again"  # the last prediction of an id wins
    assert (rows[LABEL_COLUMN] == "").all()
    assert rows[PREDICTED_COLUMN].tolist() == ["high", "high"]
    assert rows[CONFIDENCE_COLUMN].tolist() == ["0.600000", "0.600000"]
    assert by_id.loc[derived, VERSION_COLUMN] == "2" and by_id.loc["T-1", VERSION_COLUMN] == "1"
    assert rows["created_at"].tolist() == [records[1]["created_at"]] * 2


def test_log_to_rows_of_an_empty_log() -> None:
    rows, invalid = log_to_rows(pd.DataFrame(columns=["ticket_id"]))
    assert rows.empty and invalid == 0 and list(rows.columns) == list(ROW_COLUMNS)


def test_ingest_twice_adds_nothing_and_late_labels_enter_combined(
    stored: Storage, tickets: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, new = tickets
    log_day(stored, new.iloc[:60], "2026-12-01", with_ids=True)
    log_day(stored, new.iloc[60:], "2026-12-02", with_ids=False)

    first = ingest_predictions(stored)
    assert (first.predictions, first.rows, first.invalid) == (120, 120, 0)
    assert (first.added, first.replaced, first.unchanged, first.dropped) == (120, 0, 0, 0)
    assert first.days == ["2026-12-01", "2026-12-02"]
    assert first.model_versions == {"1": 120}
    assert first.combined_rows == 300  # unlabelled rows stay out of the retraining set
    stored_new = load_dataset(stored, NEW_KEY)
    assert len(stored_new) == 120 and (stored_new[LABEL_COLUMN] == "").all()
    assert set(new[ID_COLUMN].iloc[:60]) <= set(stored_new[ID_COLUMN])
    before = stored.read_bytes(NEW_KEY)

    again = ingest_predictions(stored)
    assert (again.added, again.replaced, again.unchanged) == (0, 0, 120)
    assert stored.read_bytes(NEW_KEY) == before

    # late labels: the same ids, now labelled, arrive through upload
    late = new.iloc[:40].copy()
    report = upload(stored, None, late)
    assert (report.added, report.replaced, report.dropped) == (0, 40, 0)
    assert report.combined_rows == 340
    combined = load_dataset(stored, COMBINED_KEY)
    labelled = combined.set_index(ID_COLUMN).loc[late[ID_COLUMN], LABEL_COLUMN]
    assert labelled.tolist() == late[LABEL_COLUMN].tolist()
    merged = load_dataset(stored, NEW_KEY).set_index(ID_COLUMN)
    # the served columns survive the label upload (its file does not have them)
    assert (merged.loc[late[ID_COLUMN], PREDICTED_COLUMN] == "high").all()

    # ingesting the log once more never erases the labels
    third = ingest_predictions(stored, since="2026-12-01")
    assert (third.added, third.replaced, third.unchanged) == (0, 0, 120)
    assert load_dataset(stored, COMBINED_KEY).shape[0] == 340


def test_since_until_and_reference_ids_are_dropped(
    stored: Storage, tickets: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, new = tickets
    log_day(stored, new.iloc[:10], "2026-12-01", with_ids=True)
    log_day(stored, new.iloc[10:30], "2026-12-02", with_ids=True)
    log_day(stored, reference.iloc[:5], "2026-12-03", with_ids=True)  # ids of the reference

    day2 = ingest_predictions(stored, *day_bounds("2026-12-02"))
    assert (day2.predictions, day2.added) == (20, 20)
    assert day2.days == ["2026-12-02"]
    later = ingest_predictions(stored, since=datetime(2026, 12, 2))
    assert (later.predictions, later.added, later.unchanged, later.dropped) == (25, 0, 20, 5)
    nothing = ingest_predictions(stored, since="2030-01-01")
    assert nothing.predictions == 0 and nothing.new_rows == 20


def test_ingest_without_a_reference_is_refused_and_writes_nothing(
    local_storage: Storage, tickets: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    log_day(local_storage, tickets[1].iloc[:5], "2026-12-01", with_ids=True)
    with pytest.raises(DatasetMissingError):
        ingest_predictions(local_storage)
    assert not local_storage.exists(NEW_KEY)


def test_ingest_on_gcs(gcs_storage: Storage, tickets: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    upload(gcs_storage, tickets[0], None)
    log_day(gcs_storage, tickets[1].iloc[:30], "2026-12-01", with_ids=False)
    assert len(read_prediction_log(gcs_storage)) == 30
    assert ingest_predictions(gcs_storage).added == 30
    assert ingest_predictions(gcs_storage).unchanged == 30


def test_cli_ingest_predictions(
    stored: Storage, tickets: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    log_day(stored, tickets[1].iloc[:25], "2026-12-01", with_ids=True)
    runner = CliRunner()
    result = runner.invoke(app, ["ingest-predictions", "--since", "2026-12-01", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["added"], report["new_rows"], report["combined_rows"]) == (25, 25, 300)

    text = runner.invoke(app, ["ingest-predictions"])
    assert text.exit_code == 0
    assert "0 added" in text.stdout and "25 unchanged" in text.stdout

    bad = runner.invoke(app, ["ingest-predictions", "--since", "yesterday"])
    assert bad.exit_code == 2
    assert "--since must be an ISO date" in bad.stderr and "Traceback" not in bad.output


def test_only_reference_ids_create_no_new_data(
    stored: Storage, tickets: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    log_day(stored, tickets[0].iloc[:4], "2026-12-01", with_ids=True)
    report = ingest_predictions(stored)
    assert (report.added, report.dropped, report.new_rows) == (0, 4, 0)
    assert not stored.exists(NEW_KEY)
