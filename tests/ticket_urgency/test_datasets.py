"""Upload semantics: frozen reference, new data merged by ticket id, combined rebuilt."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ticket_urgency.contract import parse_tickets, to_csv_bytes
from ticket_urgency.datasets import (
    ARCHIVE_PREFIX,
    COMBINED_KEY,
    COMBINED_META_KEY,
    NEW_KEY,
    REFERENCE_KEY,
    ReferenceConflictError,
    combined_state,
    ensure_combined,
    load_dataset,
    merge_new,
    snapshot,
    upload,
)
from ticket_urgency.storage import Storage


def tickets(ids: list[str], labels: list[str], title: str = "t") -> pd.DataFrame:
    """Small valid ticket frame."""
    n = len(ids)
    return pd.DataFrame(
        {
            "ticket_id": ids,
            "title": [f"{title} {i}" for i in ids],
            "description": ["d"] * n,
            "source": ["web"] * n,
            "customer_tier": ["Gold"] * n,
            "label_urgency": labels,
        }
    )


def test_first_upload_stores_all_three(any_storage: Storage) -> None:
    report = upload(
        any_storage, tickets(["r1", "r2"], ["low", "high"]), tickets(["n1", "n2"], ["", "high"])
    )
    assert report.reference_status == "created"
    assert (report.added, report.replaced, report.dropped) == (2, 0, 0)
    combined = load_dataset(any_storage, COMBINED_KEY)
    assert combined["ticket_id"].tolist() == ["r1", "r2", "n2"]  # unlabelled n1 stays out
    assert report.combined_rows == 3
    assert report.reference_uri == any_storage.uri(REFERENCE_KEY)
    assert combined_state(any_storage).fresh


def test_same_reference_again_is_a_noop_and_different_one_is_refused(any_storage: Storage) -> None:
    upload(any_storage, tickets(["r1"], ["low"]), None)
    before = any_storage.read_bytes(REFERENCE_KEY)
    assert upload(any_storage, tickets(["r1"], ["low"]), None).reference_status == "unchanged"
    with pytest.raises(ReferenceConflictError, match="--replace-reference"):
        upload(any_storage, tickets(["r9"], ["high"]), None)
    assert any_storage.read_bytes(REFERENCE_KEY) == before


def test_replace_reference_archives_the_old_one(any_storage: Storage) -> None:
    upload(any_storage, tickets(["r1"], ["low"]), None)
    old = any_storage.read_bytes(REFERENCE_KEY)
    report = upload(any_storage, tickets(["r9"], ["high"]), None, replace_reference=True)
    assert report.reference_status == "replaced"
    archived = any_storage.list(ARCHIVE_PREFIX)
    assert len(archived) == 1
    assert any_storage.read_bytes(archived[0]) == old
    assert load_dataset(any_storage, REFERENCE_KEY)["ticket_id"].tolist() == ["r9"]


def test_new_data_accumulates_replaces_late_labels_and_drops_reference_ids(
    any_storage: Storage,
) -> None:
    upload(any_storage, tickets(["r1"], ["low"]), tickets(["n1", "n2"], ["", ""]))
    report = upload(any_storage, None, tickets(["n2", "n3", "r1"], ["critical", "", "low"]))
    assert (report.added, report.replaced, report.dropped) == (1, 1, 1)
    new = load_dataset(any_storage, NEW_KEY)
    assert new["ticket_id"].tolist() == ["n1", "n2", "n3"]
    assert new.set_index("ticket_id").loc["n2", "label_urgency"] == "critical"
    combined = load_dataset(any_storage, COMBINED_KEY)
    assert combined["ticket_id"].tolist() == ["r1", "n2"]
    assert report.new_labels == ["critical"]  # a level the reference never had is reported


def test_reuploading_the_same_new_file_adds_nothing(any_storage: Storage) -> None:
    new = tickets(["n1", "n2"], ["low", ""])
    upload(any_storage, tickets(["r1"], ["low"]), new)
    report = upload(any_storage, None, new)
    assert (report.added, report.replaced, report.unchanged) == (0, 0, 2)


def test_empty_label_never_erases_a_known_label() -> None:
    existing = tickets(["n1"], ["high"])
    merged, counts = merge_new(existing, tickets(["n1"], [""]), set())
    assert merged["label_urgency"].tolist() == ["high"]
    assert counts.unchanged == 1


def test_stale_combined_is_detected_and_rebuilt(local_storage: Storage) -> None:
    upload(local_storage, tickets(["r1"], ["low"]), tickets(["n1"], ["high"]))
    local_storage.write_bytes(COMBINED_KEY, to_csv_bytes(tickets(["zz"], ["low"])))
    state = combined_state(local_storage)
    assert not state.fresh and "combined_sha256" in state.reason
    combined, rebuilt = ensure_combined(local_storage)
    assert rebuilt
    assert combined["ticket_id"].tolist() == ["r1", "n1"]
    meta = json.loads(local_storage.read_bytes(COMBINED_META_KEY))
    assert meta["rows"] == 2
    assert ensure_combined(local_storage)[1] is False


def test_a_fresh_combined_is_read_once_so_a_concurrent_rebuild_cannot_swap_it(
    any_storage: Storage,
) -> None:
    upload(any_storage, tickets(["r1"], ["low"]), tickets(["n1"], ["high"]))
    checked = any_storage.read_bytes(COMBINED_KEY)

    class RacedStorage:
        """Another builder replaces the combined file right after it is first read."""

        def __init__(self, inner: Storage) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def read_bytes(self, key: str) -> bytes:
            data = self.inner.read_bytes(key)
            if key == COMBINED_KEY:
                self.inner.write_bytes(key, to_csv_bytes(tickets(["other"], ["low"])))
            return data

    combined, rebuilt = ensure_combined(RacedStorage(any_storage))  # type: ignore[arg-type]
    assert not rebuilt
    assert combined["ticket_id"].tolist() == ["r1", "n1"]  # the checked bytes, not the swap
    assert any_storage.read_bytes(COMBINED_KEY) != checked  # the swap did happen
    assert not combined_state(any_storage).fresh  # and is detected from then on


def test_snapshot_is_content_addressed(local_storage: Storage) -> None:
    df = tickets(["r1"], ["low"])
    digest, uri = snapshot(local_storage, df)
    assert snapshot(local_storage, df) == (digest, uri)
    stored = parse_tickets(local_storage.read_bytes(f"datasets/snapshots/{digest}.csv"), uri)
    pd.testing.assert_frame_equal(stored, df)
