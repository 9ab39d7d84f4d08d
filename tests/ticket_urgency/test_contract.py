"""The ticket data contract: what loads, what is refused and how the error reads."""

from __future__ import annotations

import pandas as pd
import pytest

from ticket_urgency.contract import (
    ID_COLUMN,
    DataContractError,
    derive_ticket_ids,
    parse_tickets,
    to_csv_bytes,
)

SEED_HEADER = b"title,description,source,customer_tier,label_urgency\n"


def test_seed_format_loads_unchanged_with_derived_ids() -> None:
    data = SEED_HEADER + b"App down,Nobody can log in,web,Gold,high\nTypo,,email,Free,low\n"
    df = parse_tickets(data, "tickets.csv", labels="required")
    assert list(df.columns) == [
        ID_COLUMN,
        "title",
        "description",
        "source",
        "customer_tier",
        "label_urgency",
    ]
    assert df["description"].tolist() == ["Nobody can log in", ""]
    assert df[ID_COLUMN].str.startswith("h-").all()
    again = parse_tickets(data, "tickets.csv", labels="required")
    assert again[ID_COLUMN].tolist() == df[ID_COLUMN].tolist()


def test_identical_rows_get_distinct_stable_ids() -> None:
    df = pd.DataFrame(
        {
            "title": ["a", "a"],
            "description": ["b", "b"],
            "source": ["web"] * 2,
            "customer_tier": ["Gold"] * 2,
        }
    )
    ids = derive_ticket_ids(df)
    assert ids.is_unique
    assert ids.tolist() == derive_ticket_ids(df).tolist()


def test_extra_columns_and_optional_columns_are_kept() -> None:
    data = (
        b"ticket_id,created_at,title,description,source,customer_tier,label_urgency,team\n"
        b"T1,2024-05-01T10:00:00Z,x,y,web,Gold,low,billing\n"
    )
    df = parse_tickets(data, "f.csv", labels="required")
    assert df.loc[0, "team"] == "billing"
    assert df.loc[0, ID_COLUMN] == "T1"


def test_unlabelled_new_data_is_accepted_and_gets_empty_labels() -> None:
    data = b"title,description,source,customer_tier\nx,y,web,Gold\n"
    df = parse_tickets(data, "new.csv", labels="optional")
    assert df["label_urgency"].tolist() == [""]


def test_round_trip_is_byte_stable() -> None:
    data = SEED_HEADER + 'Unicode ✓,"multi\nline, quoted",web,Gold,high\n'.encode()
    df = parse_tickets(data, "f.csv", labels="required")
    assert to_csv_bytes(parse_tickets(to_csv_bytes(df), "g.csv")) == to_csv_bytes(df)


@pytest.mark.parametrize(
    ("data", "labels", "expected"),
    [
        (b"", "optional", "f.csv: is empty."),
        (SEED_HEADER, "optional", "f.csv: has a header but no rows."),
        (
            b"title,description,source\nx,y,web\n",
            "optional",
            "missing required column 'customer_tier'",
        ),
        (
            SEED_HEADER + b"x,y,web,Gold,\n",
            "required",
            "column 'label_urgency' is empty; every reference row must be labelled (rows 1)",
        ),
        (
            b"title,description,source,customer_tier\nx,y,web,Gold\n",
            "required",
            "column 'label_urgency' is missing",
        ),
        (
            "title,description,source,customer_tier\ncafé,y,web,Gold\n".encode("latin-1"),
            "optional",
            "is not valid UTF-8",
        ),
        (
            b"title,title,description,source,customer_tier\na,b,c,web,Gold\n",
            "optional",
            "column 'title' appears more than once",
        ),
        (SEED_HEADER + b'x,"unterminated,web,Gold,low\n', "optional", "is not a parsable CSV"),
        (SEED_HEADER + b"x,y,,Gold,low\n", "optional", "column 'source' is empty (rows 1)"),
        (
            SEED_HEADER + b"x,y,web,Gold,low\n,,web,Gold,low\n",
            "optional",
            "title and description are both empty (rows 2)",
        ),
        (
            b"created_at," + SEED_HEADER + b"yesterday,x,y,web,Gold,low\n",
            "optional",
            "column 'created_at' is not an ISO 8601 timestamp (rows 1)",
        ),
        (
            b"ticket_id," + SEED_HEADER + b"1,x,y,web,Gold,low\n1,z,y,web,Gold,low\n",
            "optional",
            "column 'ticket_id' has duplicate values",
        ),
        (SEED_HEADER + b"x,y,web,Gold,low,extra\n", "optional", "more fields than the header"),
        (b"\x00\x01\x02binary", "optional", "NUL bytes"),
    ],
)
def test_contract_errors_name_file_column_and_rows(data: bytes, labels: str, expected: str) -> None:
    with pytest.raises(DataContractError) as info:
        parse_tickets(data, "f.csv", labels=labels)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("f.csv: ")
    assert expected in message
    assert "\n" not in message


def test_error_lists_only_the_first_rows() -> None:
    rows = b"".join(b"x,y,web,Gold,\n" for _ in range(12))
    with pytest.raises(DataContractError) as info:
        parse_tickets(SEED_HEADER + rows, "f.csv", labels="required")
    assert info.value.rows[:3] == [1, 2, 3]
    assert "and 7 more" in str(info.value)
