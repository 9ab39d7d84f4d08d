"""The stored datasets: frozen reference, accumulating new data, and the combined retraining set.

Layout below the storage root (see DESIGN.md)::

    datasets/tickets.csv                 reference: write-once
    datasets/new_tickets.csv             new production data: accumulates by ticket id
    datasets/combined_tickets.csv        reference + labelled new rows
    datasets/combined_tickets.meta.json  digests of the inputs combined was built from
    datasets/archive/tickets_<ts>.csv    references replaced with --replace-reference
    datasets/snapshots/<digest>.csv      exact training data of each run
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pandas as pd

from ticket_urgency.contract import (
    ID_COLUMN,
    LABEL_COLUMN,
    TIME_COLUMN,
    Labels,
    labelled,
    parse_tickets,
    to_csv_bytes,
)
from ticket_urgency.storage import AlreadyExistsError, Storage, update_object

REFERENCE_KEY = "datasets/tickets.csv"
NEW_KEY = "datasets/new_tickets.csv"
COMBINED_KEY = "datasets/combined_tickets.csv"
COMBINED_META_KEY = "datasets/combined_tickets.meta.json"
ARCHIVE_PREFIX = "datasets/archive"
SNAPSHOT_PREFIX = "datasets/snapshots"


class ReferenceConflictError(RuntimeError):
    """A different reference is already stored and replacing it was not asked for."""


class DatasetMissingError(FileNotFoundError):
    """A stored dataset that a step needs does not exist yet."""


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def utc_stamp(now: datetime | None = None) -> str:
    """Return a compact UTC timestamp for file names, e.g. ``20261204T101530Z``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def load_dataset(storage: Storage, key: str, *, labels: Labels = "optional") -> pd.DataFrame:
    """Load and validate a stored ticket CSV.

    Raises:
        DatasetMissingError: When the object does not exist.
        DataContractError: When the stored file breaks the contract.
    """
    try:
        data = storage.read_bytes(key)
    except FileNotFoundError:
        raise DatasetMissingError(f"{storage.uri(key)} does not exist yet; run upload") from None
    return parse_tickets(data, storage.uri(key), labels=labels)


@dataclass
class MergeCounts:
    """What merging incoming rows into new data did."""

    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    dropped: int = 0
    dropped_ids: list[str] = field(default_factory=list)


def merge_new(
    existing: pd.DataFrame | None, incoming: pd.DataFrame, reference_ids: set[str]
) -> tuple[pd.DataFrame, MergeCounts]:
    """Merge incoming rows into the new data by ticket id.

    A row whose id is in the reference is dropped; a row whose id is already in new data
    replaces it in place (how late labels arrive), except that an empty label never erases a
    known one, and columns the incoming file does not have keep their stored values; other
    rows are appended (with empty cells in columns their file lacks). Within ``incoming`` the
    last row of an id wins.

    Args:
        existing: The stored new data, or None.
        incoming: Validated incoming rows.
        reference_ids: Ticket ids of the reference.

    Returns:
        The merged frame and the counts.
    """
    counts = MergeCounts()
    incoming = incoming.drop_duplicates(ID_COLUMN, keep="last")
    in_ref = incoming[ID_COLUMN].isin(reference_ids)
    counts.dropped = int(in_ref.sum())
    counts.dropped_ids = incoming.loc[in_ref, ID_COLUMN].head(20).tolist()
    incoming = incoming[~in_ref]
    if existing is None or existing.empty:
        counts.added = len(incoming)
        return incoming.reset_index(drop=True), counts

    columns = list(dict.fromkeys([*existing.columns, *incoming.columns]))
    merged = existing.reindex(columns=columns, fill_value="").set_index(ID_COLUMN, drop=False)
    inc = incoming.reindex(columns=columns, fill_value="").set_index(ID_COLUMN, drop=False)
    seen = inc.index.isin(merged.index)
    updates = inc[seen].copy()
    if not updates.empty:
        # A replacing row carries only the columns of its own file: the others (e.g. an
        # extra column or created_at the late-label file lacks) keep their stored values.
        absent = [c for c in columns if c not in incoming.columns]
        updates[absent] = merged.loc[updates.index, absent]
        old_labels = merged.loc[updates.index, LABEL_COLUMN]
        keep_old = updates[LABEL_COLUMN].eq("") & old_labels.ne("")
        updates.loc[keep_old, LABEL_COLUMN] = old_labels[keep_old]
        same = (updates == merged.loc[updates.index]).all(axis=1)
        counts.unchanged = int(same.sum())
        counts.replaced = int((~same).sum())
        merged.loc[updates.index] = updates
    added = inc[~seen]
    counts.added = len(added)
    out = pd.concat([merged, added]).reset_index(drop=True)
    return out, counts


def within_retention(new: pd.DataFrame, retention_days: int) -> pd.DataFrame:
    """Return the rows of ``new`` inside the retention window (all rows when it is 0).

    The window is the ``retention_days`` days up to the newest ``created_at`` of ``new``, not
    up to the wall clock, so the combined set stays a pure function of the stored files (its
    digest check stays valid and a rebuild is reproducible). Rows without a time count as
    oldest (as in :func:`ticket_urgency.contract.sort_by_time`) and fall outside a window;
    data without a ``created_at`` column cannot be windowed and is kept whole.
    """
    if retention_days <= 0 or new.empty or TIME_COLUMN not in new.columns:
        return new
    ts = pd.to_datetime(new[TIME_COLUMN], errors="coerce", utc=True, format="ISO8601")
    newest = ts.max()
    if pd.isna(newest):
        return new
    return new[ts > newest - pd.Timedelta(days=retention_days)]


def build_combined(
    reference: pd.DataFrame, new: pd.DataFrame | None, *, retention_days: int = 0
) -> pd.DataFrame:
    """Return reference + the labelled rows of new data (the retraining set).

    Args:
        reference: The frozen reference (always kept whole).
        new: The stored new data, or None.
        retention_days: Keep only new rows of the last ``retention_days`` days (by
            ``created_at``, see :func:`within_retention`); 0 keeps all.
    """
    if new is None or new.empty:
        return reference.reset_index(drop=True)
    new = within_retention(new, retention_days)
    columns = list(dict.fromkeys([*reference.columns, *new.columns]))
    parts = [
        reference.reindex(columns=columns, fill_value=""),
        labelled(new).reindex(columns=columns, fill_value=""),
    ]
    return pd.concat(parts, ignore_index=True)


@dataclass
class CombinedState:
    """Whether the stored combined set matches its inputs.

    Attributes:
        fresh: True when the combined set was built from the stored reference and new data.
        reason: Why it is (not) fresh.
        data: The combined file's bytes that were checked (None when not fresh): read these,
            not the object again, which a concurrent rebuild may have replaced meanwhile.
    """

    fresh: bool
    reason: str
    data: bytes | None = field(default=None, repr=False)


def combined_state(storage: Storage, *, retention_days: int = 0) -> CombinedState:
    """Check the stored combined set against the digests of its inputs and the retention."""
    try:
        meta = json.loads(storage.read_bytes(COMBINED_META_KEY))
        combined = storage.read_bytes(COMBINED_KEY)
    except FileNotFoundError:
        return CombinedState(False, "combined set or its metadata is missing")
    except ValueError:
        return CombinedState(False, "combined metadata is unreadable")
    reference = storage.read_bytes(REFERENCE_KEY) if storage.exists(REFERENCE_KEY) else b""
    new = storage.read_bytes(NEW_KEY) if storage.exists(NEW_KEY) else b""
    expected = {
        "reference_sha256": sha256(reference),
        "new_sha256": sha256(new),
        "combined_sha256": sha256(combined),
    }
    stale = [k for k, v in expected.items() if meta.get(k) != v]
    if stale:
        return CombinedState(False, "digest mismatch: " + ", ".join(stale))
    if meta.get("retention_days", 0) != retention_days:
        return CombinedState(False, "retention window changed")
    return CombinedState(True, "matches its inputs", combined)


def rebuild_combined(storage: Storage, *, retention_days: int = 0) -> pd.DataFrame:
    """Rebuild ``combined_tickets.csv`` from the stored reference and new data.

    Args:
        storage: The storage root.
        retention_days: Retention window of the new rows (``settings.retention_days``;
            0 = unbounded), see :func:`within_retention`.

    Returns:
        The combined frame.

    Raises:
        DatasetMissingError: When no reference is stored.
    """
    with storage.lock(COMBINED_KEY):
        ref_bytes, _ = storage.read_versioned(REFERENCE_KEY)
        if ref_bytes is None:
            raise DatasetMissingError(f"{storage.uri(REFERENCE_KEY)} does not exist; run upload")
        new_bytes, _ = storage.read_versioned(NEW_KEY)
        reference = parse_tickets(ref_bytes, storage.uri(REFERENCE_KEY), labels="required")
        new = parse_tickets(new_bytes, storage.uri(NEW_KEY)) if new_bytes else None
        combined = build_combined(reference, new, retention_days=retention_days)
        data = to_csv_bytes(combined)
        storage.write_bytes(COMBINED_KEY, data)
        meta = {
            "reference_sha256": sha256(ref_bytes),
            "new_sha256": sha256(new_bytes or b""),
            "combined_sha256": sha256(data),
            "rows": len(combined),
            "reference_rows": len(reference),
            "new_labelled_rows": len(combined) - len(reference),
            "retention_days": retention_days,
            "built_at": datetime.now(UTC).isoformat(),
        }
        storage.write_bytes(COMBINED_META_KEY, json.dumps(meta, indent=2).encode())
    return combined


def ensure_combined(storage: Storage, *, retention_days: int = 0) -> tuple[pd.DataFrame, bool]:
    """Return the combined set, rebuilding it first when it no longer matches its inputs.

    Args:
        storage: The storage root.
        retention_days: Retention window of the new rows (0 = unbounded).

    Returns:
        ``(combined, rebuilt)``.
    """
    state = combined_state(storage, retention_days=retention_days)
    if state.fresh and state.data is not None:
        # the bytes whose digest was just checked: on GCS rebuilds are not locked, so the
        # object itself may already be another builder's
        return parse_tickets(state.data, storage.uri(COMBINED_KEY)), False
    return rebuild_combined(storage, retention_days=retention_days), True


@dataclass
class UploadReport:
    """What ``upload`` did; printed by the CLI and recorded by Dagster."""

    reference_uri: str
    new_uri: str
    combined_uri: str
    reference_status: str = "unchanged"
    archived_reference_uri: str | None = None
    reference_rows: int = 0
    new_rows: int = 0
    combined_rows: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    dropped: int = 0
    new_labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def store_reference(
    storage: Storage, reference: pd.DataFrame, *, replace: bool = False
) -> tuple[str, str | None]:
    """Store the reference write-once.

    Returns:
        ``(status, archived_uri)`` with status ``created``, ``unchanged`` or ``replaced``.

    Raises:
        ReferenceConflictError: A different reference exists and ``replace`` is False.
    """
    data = to_csv_bytes(reference)
    current, token = storage.read_versioned(REFERENCE_KEY)
    if current is None:
        try:
            storage.create(REFERENCE_KEY, data)
            return "created", None
        except AlreadyExistsError:
            current, token = storage.read_versioned(REFERENCE_KEY)
    assert current is not None
    if sha256(current) == sha256(data):
        return "unchanged", None
    if not replace:
        raise ReferenceConflictError(
            f"{storage.uri(REFERENCE_KEY)} already holds a different reference "
            f"(sha256 {sha256(current)[:12]} vs {sha256(data)[:12]}); it is frozen — pass "
            "--replace-reference to archive it and store the new one"
        )
    archive_key = f"{ARCHIVE_PREFIX}/tickets_{utc_stamp()}.csv"
    storage.create(archive_key, current)
    storage.write_bytes(REFERENCE_KEY, data, if_token=token)
    return "replaced", storage.uri(archive_key)


def append_new(storage: Storage, incoming: pd.DataFrame, reference_ids: set[str]) -> MergeCounts:
    """Merge ``incoming`` into the stored new data without losing concurrent writers' rows."""
    result: dict[str, MergeCounts] = {}

    def apply(current: bytes | None) -> bytes:
        existing = parse_tickets(current, storage.uri(NEW_KEY)) if current else None
        merged, counts = merge_new(existing, incoming, reference_ids)
        result["counts"] = counts
        if merged.empty:  # nothing stored and every row dropped: a header-only file would
            raise _NothingToStore  # break the contract and every later upload
        return to_csv_bytes(merged)

    with contextlib.suppress(_NothingToStore):
        update_object(storage, NEW_KEY, apply)
    return result["counts"]


class _NothingToStore(Exception):
    """Internal: the merge left no rows, so no new-data file is written."""


def upload(
    storage: Storage,
    reference: pd.DataFrame | None,
    new: pd.DataFrame | None,
    *,
    replace_reference: bool = False,
    retention_days: int = 0,
) -> UploadReport:
    """Store a validated reference and/or new data, then rebuild the combined set.

    Validation happens before this is called (parse both files first), so a bad file changes
    nothing stored. The order of writes keeps every state consistent: reference, then new,
    then combined (whose digests make a stale combined detectable if a step fails).

    Args:
        storage: The storage root.
        reference: Validated reference tickets, or None to keep the stored one.
        new: Validated new tickets, or None.
        replace_reference: Archive and replace a different stored reference.
        retention_days: Retention window of the combined set's new rows (0 = unbounded).

    Returns:
        The upload report.
    """
    report = UploadReport(
        storage.uri(REFERENCE_KEY), storage.uri(NEW_KEY), storage.uri(COMBINED_KEY)
    )
    if reference is not None:
        report.reference_status, report.archived_reference_uri = store_reference(
            storage, reference, replace=replace_reference
        )
    stored_ref = load_dataset(storage, REFERENCE_KEY, labels="required")
    report.reference_rows = len(stored_ref)
    if new is not None:
        ref_ids = set(stored_ref[ID_COLUMN])
        counts = append_new(storage, new, ref_ids)
        report.added, report.replaced = counts.added, counts.replaced
        report.unchanged, report.dropped = counts.unchanged, counts.dropped
        known = set(stored_ref[LABEL_COLUMN])
        report.new_labels = sorted(set(labelled(new)[LABEL_COLUMN]) - known)
    combined = rebuild_combined(storage, retention_days=retention_days)
    report.combined_rows = len(combined)
    report.new_rows = len(load_dataset(storage, NEW_KEY)) if storage.exists(NEW_KEY) else 0
    return report


def snapshot(storage: Storage, df: pd.DataFrame) -> tuple[str, str]:
    """Store ``df`` as ``datasets/snapshots/<digest>.csv`` (idempotent).

    Returns:
        ``(digest, uri)``.
    """
    data = to_csv_bytes(df)
    digest = sha256(data)
    key = f"{SNAPSHOT_PREFIX}/{digest}.csv"
    with contextlib.suppress(AlreadyExistsError):
        storage.create(key, data)
    return digest, storage.uri(key)
