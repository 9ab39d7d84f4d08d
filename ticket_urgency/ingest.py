"""Served traffic becomes new data: the prediction log turned into rows of ``new_tickets.csv``.

Every prediction the API serves is logged (PII-masked) under ``predictions/<date>/``
(:mod:`ticket_urgency.prediction_log`). :func:`ingest_predictions` reads that log back, turns it
into unlabelled ticket rows keyed by ``ticket_id`` (the id the request carried, else the id the
log derived from the content and the serving time) and merges them into the stored new data
with the rules of ``upload`` (:func:`ticket_urgency.datasets.merge_new`): an id already in
the reference is dropped, an id already in new data is replaced in place (an empty label never
erases a known one). A served row replaces a stored one only when it was served later than the
stored row (column ``served_at``), so ingesting the same days twice, or again after labels
were uploaded, changes nothing. The combined retraining set
is rebuilt afterwards; unlabelled rows do not enter it until their labels arrive (``upload``
of the same ids with ``label_urgency`` filled).

:func:`log_to_rows` is the pure middle; :func:`ingest_predictions` is the storage edge.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from ticket_urgency.contract import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    ID_COLUMN,
    LABEL_COLUMN,
    TEXT_COLUMNS,
    TIME_COLUMN,
    parse_tickets,
    to_csv_bytes,
)
from ticket_urgency.datasets import (
    COMBINED_KEY,
    NEW_KEY,
    REFERENCE_KEY,
    MergeCounts,
    load_dataset,
    merge_new,
    rebuild_combined,
)
from ticket_urgency.prediction_log import PREFIX, derive_ticket_id, read_prediction_log
from ticket_urgency.storage import update_object

if TYPE_CHECKING:
    from ticket_urgency.storage import Storage

SERVED_AT_COLUMN = "served_at"
PREDICTED_COLUMN = "predicted_urgency"
CONFIDENCE_COLUMN = "prediction_confidence"
VERSION_COLUMN = "model_version"
EXTRA_COLUMNS = (SERVED_AT_COLUMN, PREDICTED_COLUMN, CONFIDENCE_COLUMN, VERSION_COLUMN)
"""Columns ingested rows carry beside the ticket contract's: when it was served, what the model
said and which version said it."""

ROW_COLUMNS = (ID_COLUMN, TIME_COLUMN, *FEATURE_COLUMNS, LABEL_COLUMN, *EXTRA_COLUMNS)
"""Column order of the rows :func:`log_to_rows` returns."""


@dataclass
class IngestReport:
    """What :func:`ingest_predictions` did (printed by the CLI, recorded by Dagster).

    Attributes:
        since: Lower bound of the prediction time (ISO), or None for the whole log.
        until: Exclusive upper bound (ISO), or None.
        days: The UTC days of the predictions read.
        predictions: Predictions read from the log.
        rows: Distinct tickets they became (a ticket served twice counts once: the last wins).
        invalid: Predictions that cannot be ticket rows (no source/tier, or no text at all).
        added: Rows new to the new data.
        replaced: Rows that replaced a stored row with the same id.
        unchanged: Rows identical to the stored row with the same id (already ingested).
        dropped: Rows whose id is in the reference (never stored).
        new_rows: Rows of the new data afterwards.
        combined_rows: Rows of the combined retraining set afterwards.
    """

    new_uri: str
    combined_uri: str
    since: str | None = None
    until: str | None = None
    days: list[str] = field(default_factory=list)
    predictions: int = 0
    rows: int = 0
    invalid: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    dropped: int = 0
    new_rows: int = 0
    combined_rows: int = 0
    model_versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def _text(series: pd.Series) -> pd.Series:
    return series.where(series.notna(), "").astype(str)


def _confidence(log: pd.DataFrame) -> pd.Series:
    conf = pd.to_numeric(log["confidence"], errors="coerce")
    return pd.Series(
        ["" if pd.isna(c) else f"{float(c):.6f}" for c in conf], index=log.index, dtype=object
    )


def log_to_rows(log: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Turn prediction-log records into unlabelled new-data rows.

    Args:
        log: A frame with the columns of :data:`ticket_urgency.prediction_log.LOG_COLUMNS`,
            oldest first (what :func:`~ticket_urgency.prediction_log.read_prediction_log`
            returns).

    Returns:
        ``(rows, invalid)``: one row per ticket id with :data:`ROW_COLUMNS` as strings
        (``created_at`` = serving time, ``label_urgency`` empty; the last prediction of an id
        wins), and the number of records dropped because they break the data contract
        (empty source or tier, or neither title nor description).
    """
    if log.empty:
        return pd.DataFrame(columns=list(ROW_COLUMNS), dtype=object), 0
    rows = pd.DataFrame(index=log.index)
    for col in FEATURE_COLUMNS:
        rows[col] = _text(log[col])
    for col in CATEGORICAL_COLUMNS:
        rows[col] = rows[col].str.strip()
    rows[TIME_COLUMN] = _text(log["created_at"])
    rows[SERVED_AT_COLUMN] = rows[TIME_COLUMN]
    ids = _text(log["ticket_id"]).str.strip()
    missing = ids == ""
    if missing.any():  # records written before ids were derived at flush time
        derived = [
            derive_ticket_id(str(t), str(d), str(s), str(c), str(at))
            for t, d, s, c, at in zip(
                rows.loc[missing, "title"],
                rows.loc[missing, "description"],
                rows.loc[missing, "source"],
                rows.loc[missing, "customer_tier"],
                rows.loc[missing, TIME_COLUMN],
                strict=True,
            )
        ]
        ids = ids.where(~missing, pd.Series(derived, index=ids.index[missing], dtype=object))
    rows[ID_COLUMN] = ids
    rows[LABEL_COLUMN] = ""
    rows[PREDICTED_COLUMN] = _text(log["prediction"])
    rows[CONFIDENCE_COLUMN] = _confidence(log)
    rows[VERSION_COLUMN] = _text(log["model_version"])
    has_text = pd.Series(False, index=rows.index)
    for col in TEXT_COLUMNS:
        has_text |= rows[col].str.strip() != ""
    valid = has_text
    for col in CATEGORICAL_COLUMNS:
        valid &= rows[col] != ""
    invalid = int((~valid).sum())
    rows = rows[valid].drop_duplicates(ID_COLUMN, keep="last")
    return rows[list(ROW_COLUMNS)].reset_index(drop=True), invalid


def newer_served(existing: pd.DataFrame | None, rows: pd.DataFrame) -> pd.Series:
    """Return which served rows are news for the stored new data (pure).

    A row is news when its id is not stored yet, or was stored from a file (no
    ``served_at``), or was served again later than the stored serving. So re-ingesting a day
    changes nothing, and neither does re-ingesting after labels were uploaded for those ids.
    """
    if existing is None or existing.empty or ID_COLUMN not in existing:
        return pd.Series(True, index=rows.index)
    if SERVED_AT_COLUMN in existing:
        stored = existing.set_index(ID_COLUMN)[SERVED_AT_COLUMN].astype(str)
    else:
        stored = pd.Series("", index=existing[ID_COLUMN], dtype=object)
    previous = rows[ID_COLUMN].map(stored)
    known = previous.notna()
    prev_t = pd.to_datetime(previous.where(known, ""), utc=True, errors="coerce", format="ISO8601")
    this_t = pd.to_datetime(rows[SERVED_AT_COLUMN], utc=True, errors="coerce", format="ISO8601")
    later = (this_t > prev_t) | (prev_t.isna() & this_t.notna())
    return ~known | later.fillna(False)


def merge_served(storage: Storage, rows: pd.DataFrame, reference_ids: set[str]) -> MergeCounts:
    """Merge served rows into the stored new data (atomically; see :func:`newer_served`).

    Rows that are not news count as unchanged; the others follow
    :func:`ticket_urgency.datasets.merge_new` (reference ids dropped, known ids replaced in
    place without erasing a label, new ids appended).
    """
    result: dict[str, MergeCounts] = {}

    def apply(current: bytes | None) -> bytes:
        existing = parse_tickets(current, storage.uri(NEW_KEY)) if current else None
        news = newer_served(existing, rows)
        in_ref = rows[ID_COLUMN].isin(reference_ids)
        merged, counts = merge_new(existing, rows[news | in_ref], reference_ids)
        counts.unchanged += int((~news & ~in_ref).sum())
        result["counts"] = counts
        if counts.added == 0 and counts.replaced == 0:
            if current is None:
                raise _NothingToWrite
            return current
        return to_csv_bytes(merged)

    with contextlib.suppress(_NothingToWrite):  # only reference ids: no file to create
        update_object(storage, NEW_KEY, apply)
    return result["counts"]


class _NothingToWrite(Exception):
    """Raised inside an update to leave a missing new-data file missing."""


def _as_utc(value: date | datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_served(
    storage: Storage,
    since: date | datetime | str | None = None,
    until: date | datetime | str | None = None,
) -> pd.DataFrame:
    """Read the prediction log between ``since`` (inclusive) and ``until`` (exclusive), UTC."""
    log = read_prediction_log(storage, since)
    if until is not None and not log.empty:
        times = pd.to_datetime(log["created_at"], utc=True, errors="coerce", format="ISO8601")
        log = log[times < pd.Timestamp(_as_utc(until))].reset_index(drop=True)
    return log


def ingest_predictions(
    storage: Storage,
    since: date | datetime | str | None = None,
    until: date | datetime | str | None = None,
) -> IngestReport:
    """Merge the served predictions of a period into the stored new data; rebuild combined.

    Args:
        storage: The storage root (holds the log, the reference and the new data).
        since: Only predictions at or after this day/time (UTC when naive); None = all.
        until: Only predictions before this day/time; None = up to now.

    Returns:
        The report. With no predictions in the period nothing is written.

    Raises:
        DatasetMissingError: When no reference is stored yet (upload one first).
        DataContractError: When the stored new data is broken.
    """
    report = IngestReport(
        new_uri=storage.uri(NEW_KEY),
        combined_uri=storage.uri(COMBINED_KEY),
        since=_as_utc(since).isoformat() if since is not None else None,
        until=_as_utc(until).isoformat() if until is not None else None,
    )
    reference = load_dataset(storage, REFERENCE_KEY, labels="required")
    log = read_served(storage, since, until)
    report.predictions = len(log)
    if log.empty:
        report.new_rows = len(load_dataset(storage, NEW_KEY)) if storage.exists(NEW_KEY) else 0
        return report
    report.days = sorted({str(t)[:10] for t in log["created_at"]})
    versions = _text(log["model_version"]).value_counts()
    report.model_versions = {str(k): int(v) for k, v in versions.items()}
    rows, report.invalid = log_to_rows(log)
    report.rows = len(rows)
    if not rows.empty:
        # the same normalisation as upload, so a second ingest compares equal to the stored rows
        rows = parse_tickets(to_csv_bytes(rows), storage.uri(PREFIX + "/"))
        counts = merge_served(storage, rows, set(reference[ID_COLUMN]))
        report.added, report.replaced = counts.added, counts.replaced
        report.unchanged, report.dropped = counts.unchanged, counts.dropped
    report.combined_rows = len(rebuild_combined(storage))
    report.new_rows = len(load_dataset(storage, NEW_KEY)) if storage.exists(NEW_KEY) else 0
    return report


def day_bounds(day: date | str) -> tuple[datetime, datetime]:
    """Return ``[start, end)`` of a UTC day (a Dagster daily partition key such as 2026-12-04)."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime(d.year, d.month, d.day, tzinfo=UTC)
    return start, start + timedelta(days=1)
