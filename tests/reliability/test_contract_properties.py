"""Hypothesis properties of the data contract and of the merge rules for new data.

Text is arbitrary unicode (quotes, commas, CR/LF, emoji, unicode whitespace; not NUL, not
surrogates), so the properties cover the CSV quoting as well as the merge logic.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticket_urgency.contract import (
    FEATURE_COLUMNS,
    ID_COLUMN,
    LABEL_COLUMN,
    MISSING_LABELS,
    TIME_COLUMN,
    derive_ticket_ids,
    labelled,
    parse_tickets,
    sort_by_time,
    to_csv_bytes,
)
from ticket_urgency.datasets import build_combined, merge_new

pytestmark = pytest.mark.reliability

PROPS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
TRICKY = st.sampled_from(['"', ",", "\n", "\r", "\r\n", " ", "\t", "😀", "é", "\ufeff", "\u2028"])
free_text = st.lists(st.one_of(st.text(CHARS, max_size=8), TRICKY), max_size=6).map("".join)
token = st.text(CHARS, min_size=1, max_size=12).map(str.strip).filter(bool)
label = st.one_of(
    st.sampled_from(["low", "medium", "high", "critical", "urgent", "normal"]),
    token.filter(lambda s: s.lower() not in MISSING_LABELS),
)
timestamp = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.isoformat().replace("+00:00", "Z"))


@st.composite
def ticket_rows(
    draw: st.DrawFn,
    ids: list[str] | None = None,
    *,
    labels: str = "optional",
    time_column: bool | None = None,
    extra_column: bool | None = None,
    min_size: int = 1,
) -> pd.DataFrame:
    """A frame of valid ticket rows; ``ids`` are used as ticket ids when given."""
    n = len(ids) if ids is not None else draw(st.integers(min_size, 12))
    with_time = draw(st.booleans()) if time_column is None else time_column
    with_extra = draw(st.booleans()) if extra_column is None else extra_column
    rows = []
    for _ in range(n):
        title, description = draw(free_text), draw(free_text)
        if not (title.strip() or description.strip()):
            title = draw(token)
        row = {
            "title": title,
            "description": description,
            "source": draw(token),
            "customer_tier": draw(token),
            LABEL_COLUMN: draw(label if labels == "required" else st.one_of(label, st.just(""))),
        }
        if with_time:
            row[TIME_COLUMN] = draw(st.one_of(timestamp, st.just("")))
        if with_extra:
            row["team"] = draw(free_text)
        rows.append(row)
    df = pd.DataFrame(rows, dtype=object)
    if ids is not None:
        df.insert(0, ID_COLUMN, ids)
    return df


id_pool = [f"t{i}" for i in range(12)]
id_sets = st.lists(st.sampled_from(id_pool), unique=True, max_size=8)


def roundtrip(df: pd.DataFrame) -> pd.DataFrame:
    return parse_tickets(to_csv_bytes(df), "prop.csv")


@PROPS
@given(ticket_rows())
def test_valid_frames_roundtrip_through_csv(df: pd.DataFrame) -> None:
    """Serialise, parse: the same strings come back, plus a derived ticket_id in front."""
    parsed = roundtrip(df)
    assert list(parsed.columns) == [ID_COLUMN, *df.columns]
    pd.testing.assert_frame_equal(parsed.drop(columns=ID_COLUMN), df.reset_index(drop=True))
    # and a stored (parsed) frame is a fixed point: what upload writes, it reads back
    pd.testing.assert_frame_equal(roundtrip(parsed), parsed)


@PROPS
@given(ticket_rows(), st.randoms(use_true_random=False))
def test_derived_ids_are_stable_unique_and_order_independent(df: pd.DataFrame, rnd: object) -> None:
    ids = derive_ticket_ids(df)
    assert ids.is_unique
    assert ids.tolist() == derive_ticket_ids(df.copy()).tolist()
    doubled = pd.concat([df, df], ignore_index=True)  # identical rows still get unique ids
    doubled_ids = derive_ticket_ids(doubled)
    assert doubled_ids.is_unique
    assert doubled_ids.iloc[: len(df)].tolist() == ids.tolist()
    # a unique row's id depends on its content only, not on its position or neighbours; the
    # content is what the id is derived from (not the label or other columns)
    content = [c for c in (*FEATURE_COLUMNS, TIME_COLUMN) if c in df.columns]
    unique_rows = df[content].drop_duplicates().reset_index(drop=True)
    order = list(range(len(unique_rows)))
    rnd.shuffle(order)  # type: ignore[attr-defined]
    shuffled = unique_rows.iloc[order].reset_index(drop=True)
    by_content = dict(
        zip(derive_ticket_ids(unique_rows), map(tuple, unique_rows.values), strict=True)
    )
    for row_id, row in zip(derive_ticket_ids(shuffled), map(tuple, shuffled.values), strict=True):
        assert by_content[row_id] == row
    # ... and it survives the CSV round trip (so re-uploading a file is a no-op)
    assert roundtrip(df)[ID_COLUMN].tolist() == ids.tolist()


@st.composite
def merge_inputs(draw: st.DrawFn) -> tuple[pd.DataFrame | None, pd.DataFrame, set[str]]:
    """Stored new data, an incoming batch and the reference ids, drawn from a small id pool so
    that replacements and reference collisions are frequent; column sets may differ."""
    reference_ids = set(draw(st.lists(st.sampled_from(id_pool), unique=True, max_size=4)))
    existing_ids = [i for i in draw(id_sets) if i not in reference_ids]
    incoming_ids = draw(st.lists(st.sampled_from(id_pool), unique=True, min_size=1, max_size=8))
    existing: pd.DataFrame | None = None
    keep_existing: bool = draw(st.booleans())
    if existing_ids and keep_existing:
        existing = draw(ticket_rows(existing_ids))
    incoming = draw(ticket_rows(incoming_ids))
    return existing, incoming, reference_ids


@PROPS
@given(merge_inputs())
def test_merge_new_never_loses_rows_and_replaces_in_place(
    inputs: tuple[pd.DataFrame | None, pd.DataFrame, set[str]],
) -> None:
    existing, incoming, reference_ids = inputs
    merged, counts = merge_new(existing, incoming, reference_ids)

    old_ids = [] if existing is None else existing[ID_COLUMN].tolist()
    inc_ids = incoming[ID_COLUMN].tolist()
    kept_incoming = [i for i in inc_ids if i not in reference_ids]
    expected_ids = set(old_ids) | set(kept_incoming)
    assert merged[ID_COLUMN].is_unique
    assert set(merged[ID_COLUMN]) == expected_ids
    assert len(merged) == len(expected_ids)
    # stored rows keep their positions; new ids are appended in incoming order
    assert merged[ID_COLUMN].tolist() == old_ids + [i for i in kept_incoming if i not in old_ids]
    assert counts.dropped == len(set(inc_ids) & reference_ids)
    assert counts.added == len([i for i in kept_incoming if i not in old_ids])
    assert counts.replaced + counts.unchanged == len([i for i in kept_incoming if i in old_ids])
    assert not set(merged[ID_COLUMN]) & (reference_ids - set(old_ids))

    by_id = merged.set_index(ID_COLUMN)
    inc = incoming.set_index(ID_COLUMN)
    old = None if existing is None else existing.set_index(ID_COLUMN)
    for row_id in kept_incoming:
        got, new = by_id.loc[row_id], inc.loc[row_id]
        for col in incoming.columns.drop(ID_COLUMN):
            if col == LABEL_COLUMN and new[col] == "" and old is not None and row_id in old.index:
                assert got[col] == old.loc[row_id, col]  # an empty label never erases one
            else:
                assert got[col] == new[col]  # a late row (and its label) replaces the old
        if old is not None and row_id in old.index:
            for col in old.columns.difference(incoming.columns):
                assert got[col] == old.loc[row_id, col]  # columns it lacks are kept
    if old is not None:
        for row_id in old.index.difference(pd.Index(kept_incoming)):
            assert list(by_id.loc[row_id, old.columns]) == list(old.loc[row_id])

    # the stored result still honours the contract and reads back unchanged
    if len(merged):
        pd.testing.assert_frame_equal(roundtrip(merged), merged.reset_index(drop=True))


@PROPS
@given(merge_inputs())
def test_merge_new_is_idempotent(
    inputs: tuple[pd.DataFrame | None, pd.DataFrame, set[str]],
) -> None:
    existing, incoming, reference_ids = inputs
    once, _ = merge_new(existing, incoming, reference_ids)
    stored = roundtrip(once) if len(once) else None
    twice, counts = merge_new(stored, incoming, reference_ids)
    assert counts.added == 0 and counts.replaced == 0
    assert counts.unchanged == len(set(incoming[ID_COLUMN]) - reference_ids)
    if stored is not None:
        pd.testing.assert_frame_equal(twice.reset_index(drop=True), stored)


@settings(PROPS, max_examples=25)
@given(
    ticket_rows(labels="required"),
    st.one_of(st.none(), ticket_rows(min_size=0)),
)
def test_build_combined_is_reference_plus_labelled_new(
    reference: pd.DataFrame, new: pd.DataFrame | None
) -> None:
    reference = roundtrip(reference)
    new = None if new is None or new.empty else roundtrip(new)
    if new is not None:  # stored new data never holds a reference id (merge_new drops them)
        new = new[~new[ID_COLUMN].isin(reference[ID_COLUMN])].reset_index(drop=True)
    combined = build_combined(reference, new)
    new_labelled = pd.DataFrame() if new is None else labelled(new)
    assert len(combined) == len(reference) + len(new_labelled)
    head = combined.iloc[: len(reference)][list(reference.columns)].reset_index(drop=True)
    pd.testing.assert_frame_equal(head, reference)
    if new is not None:
        tail = combined.iloc[len(reference) :][list(new.columns)].reset_index(drop=True)
        pd.testing.assert_frame_equal(tail, new_labelled.reset_index(drop=True))
    assert (combined[LABEL_COLUMN] != "").all()  # the retraining set is fully labelled
    # combined is itself a valid labelled ticket file
    parse_tickets(to_csv_bytes(combined), "combined.csv", labels="required")


@PROPS
@given(ticket_rows(time_column=True))
def test_sort_by_time_is_a_stable_permutation(df: pd.DataFrame) -> None:
    """Rows without a time count as oldest; nothing is duplicated or lost."""
    out = sort_by_time(df)
    assert sorted(out.index) == sorted(df.index)
    times = pd.to_datetime(out[TIME_COLUMN], errors="coerce", utc=True, format="ISO8601")
    known = times.dropna()
    assert known.is_monotonic_increasing
    assert times.isna().sum() == 0 or times.isna().to_numpy()[: times.isna().sum()].all()
