"""Daily partitions of the new data, and drift computed per day.

When new tickets reach millions a day, one ``new_tickets.csv`` that every step rereads and
rewrites stops scaling. A day's partition is one object, and drift of a day compares only that
day with the reference, so the cost of a daily run is O(rows of the day), whatever the history::

    datasets/new_daily/<YYYY-MM-DD>.csv     the new tickets created that UTC day
    monitoring/daily/<YYYY-MM-DD>.json      the drift report of that day (and .html)

The day files are cut from the stored new data by ``created_at`` (rows without a time belong
to no day). A pipeline that lands data per day can write the day files directly instead.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta

import pandas as pd

from ticket_urgency.contract import TIME_COLUMN, labelled, parse_tickets, to_csv_bytes
from ticket_urgency.datasets import NEW_KEY, REFERENCE_KEY, DatasetMissingError, load_dataset
from ticket_urgency.drift import DriftConfig, DriftReport, compute_drift
from ticket_urgency.storage import Storage

DAILY_NEW_PREFIX = "datasets/new_daily"
DAILY_DRIFT_PREFIX = "monitoring/daily"


def day_key(day: date | str) -> str:
    """Return the storage key of a day's new tickets."""
    return f"{DAILY_NEW_PREFIX}/{date.fromisoformat(str(day)):%Y-%m-%d}.csv"


def drift_key(day: date | str, ext: str = "json") -> str:
    """Return the storage key of a day's drift report (``json`` or ``html``)."""
    return f"{DAILY_DRIFT_PREFIX}/{date.fromisoformat(str(day)):%Y-%m-%d}.{ext}"


def rows_of_day(df: pd.DataFrame, day: date | str) -> pd.DataFrame:
    """Return the rows of ``df`` created on the UTC ``day`` (none when there is no time)."""
    if TIME_COLUMN not in df.columns:
        return df.iloc[0:0]
    start = pd.Timestamp(date.fromisoformat(str(day)), tz="UTC")
    ts = pd.to_datetime(df[TIME_COLUMN], errors="coerce", utc=True, format="ISO8601")
    return df[(ts >= start) & (ts < start + timedelta(days=1))]


@dataclass
class DaySlice:
    """What storing one day's partition did."""

    day: str
    uri: str
    rows: int
    labelled_rows: int

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def store_days(storage: Storage, days: list[str]) -> list[DaySlice]:
    """Cut the stored new data into the given UTC days and store one object per day.

    The new data is read once for all days (a backfill of N days is one pass). A day without
    rows stores nothing (and reports 0 rows), so reading it later gives an empty frame.

    Raises:
        DatasetMissingError: When no new data is stored.
    """
    new = load_dataset(storage, NEW_KEY)
    out = []
    for day in days:
        rows = rows_of_day(new, day)
        key = day_key(day)
        if not rows.empty:
            storage.write_bytes(key, to_csv_bytes(rows.reset_index(drop=True)))
        elif storage.exists(key):  # the day lost its rows (re-dated upstream): no stale copy
            storage.delete(key)
        out.append(DaySlice(day, storage.uri(key), len(rows), len(labelled(rows))))
    return out


def load_day(storage: Storage, day: str) -> pd.DataFrame:
    """Return the stored tickets of ``day`` (empty frame when the day has none)."""
    key = day_key(day)
    if not storage.exists(key):
        return pd.DataFrame()
    return parse_tickets(storage.read_bytes(key), storage.uri(key))


def drift_days(
    storage: Storage, days: list[str], config: DriftConfig | None = None
) -> dict[str, DriftReport | None]:
    """Compute and store the drift report of each day against the reference.

    The reference is read once; each day costs O(rows of the day) plus the text features'
    fit on the reference. Days without rows give None and store nothing.

    Raises:
        DatasetMissingError: When no reference is stored.
    """
    if not storage.exists(REFERENCE_KEY):
        raise DatasetMissingError(f"{storage.uri(REFERENCE_KEY)} does not exist; run upload")
    reference = load_dataset(storage, REFERENCE_KEY, labels="required")
    cfg = config or DriftConfig(nannyml=False)
    out: dict[str, DriftReport | None] = {}
    for day in days:
        new = load_day(storage, day)
        if new.empty:
            out[day] = None
            continue
        report = compute_drift(
            reference, new, cfg, model=None, model_note="per-day drift: data only"
        )
        report.report_uri = storage.uri(drift_key(day))
        if report.html:
            report.html_uri = storage.uri(drift_key(day, "html"))
            storage.write_bytes(drift_key(day, "html"), report.html.encode("utf-8"))
        storage.write_bytes(drift_key(day), json.dumps(report.to_dict(), indent=2).encode())
        out[day] = report
    return out
