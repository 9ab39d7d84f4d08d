"""The ticket data contract: loading and validating ticket CSVs.

A ticket CSV has at least ``title``, ``description``, ``source`` and ``customer_tier``, and for
labelled data ``label_urgency``. ``ticket_id`` and ``created_at`` are optional; other columns are
kept. A file that breaks the contract raises :class:`DataContractError`, whose message is one
sentence naming the file, the column and the first offending rows (1 = first data row).
"""

from __future__ import annotations

import csv
import hashlib
import io
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import pandera.pandas as pa

TEXT_COLUMNS = ("title", "description")
CATEGORICAL_COLUMNS = ("source", "customer_tier")
FEATURE_COLUMNS = (*TEXT_COLUMNS, *CATEGORICAL_COLUMNS)
LABEL_COLUMN = "label_urgency"
ID_COLUMN = "ticket_id"
TIME_COLUMN = "created_at"
REQUIRED_COLUMNS = FEATURE_COLUMNS

_BOTH_EMPTY = "title and description are both empty"
Labels = Literal["required", "optional"]
MAX_ROWS_IN_MESSAGE = 5
MISSING_LABELS = frozenset({"nan", "none", "null", "na", "n/a", "<na>"})
"""Label cells (case-insensitive) that spreadsheets and pandas write for a missing label."""


class DataContractError(ValueError):
    """A ticket file breaks the data contract.

    Attributes:
        file: The file (path or URI) that was read.
        column: The offending column, when there is one.
        rows: The first offending data rows (1 = first data row), when known.
    """

    def __init__(
        self, file: str, message: str, column: str | None = None, rows: Sequence[int] = ()
    ) -> None:
        self.file = file
        self.column = column
        self.rows = list(rows)
        where = f"column '{_one_line(column)}' " if column else ""
        text = f"{_one_line(file)}: {where}{_one_line(message)}"
        if self.rows:
            text += f" (rows {_row_list(self.rows)})"
        super().__init__(text.rstrip(".") + ".")


def _one_line(text: str, limit: int = 300) -> str:
    """Escape line breaks and cap the length, so an error stays one line whatever the file."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _row_list(rows: Sequence[int]) -> str:
    head = ", ".join(str(r) for r in rows[:MAX_ROWS_IN_MESSAGE])
    return head + (f" and {len(rows) - MAX_ROWS_IN_MESSAGE} more" if len(rows) > 5 else "")


def _check_text(data: bytes, name: str) -> None:
    """Reject empty, binary and non-UTF-8 files without keeping a decoded copy around."""
    if not data.strip():
        raise DataContractError(name, "is empty")
    nul = data.find(b"\x00")  # the C parser silently truncates a field at a NUL byte
    if nul >= 0:
        line = data[:nul].count(b"\n") + 1
        raise DataContractError(
            name, f"is not a text CSV file (it contains NUL bytes, first on line {line})"
        )
    try:
        str(data, "utf-8")  # validate only; the CSV parser decodes again in chunks
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataContractError(
            name,
            f"is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
            "re-save it as UTF-8",
        ) from None


HEADER_SCAN_BYTES = 1 << 20


def _header(data: bytes, name: str) -> list[str]:
    head = data[:HEADER_SCAN_BYTES].decode("utf-8-sig", errors="ignore")
    try:  # the first CSV record (a quoted header name may span lines; \r, \n or \r\n)
        header = next(csv.reader(io.StringIO(head, newline="")))
    except (csv.Error, StopIteration) as exc:
        raise DataContractError(name, f"has an unreadable header line: {exc}") from None
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for col in header:
        if col and col in seen:
            raise DataContractError(name, "appears more than once in the header", column=col)
        seen.add(col)
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        cols = ", ".join(f"'{c}'" for c in missing)
        raise DataContractError(
            name,
            f"is missing required column{'s' if len(missing) > 1 else ''} {cols}; "
            f"found {', '.join(header) or 'no columns'}",
        )
    unnamed = [i + 1 for i, col in enumerate(header) if not col]
    if unnamed:  # e.g. trailing commas from a spreadsheet export; a column needs a name
        positions = ", ".join(str(i) for i in unnamed[:MAX_ROWS_IN_MESSAGE])
        raise DataContractError(
            name,
            f"has a header with an empty column name (column {positions}); "
            "name the column or delete it",
        )
    return header


# Every cell is a str by construction (read with dtype=str, no NA, short rows filled with ""),
# so the columns carry no pandera dtype: its per-column str dtype check cost ~30 ms per column
# per file and checked nothing the reader does not already guarantee.
STR = None


def _schema(labels: Labels, has_id: bool, has_time: bool) -> pa.DataFrameSchema:
    import pandera.pandas as pa  # ~0.25 s to import: only readers of ticket files need it

    text = pa.Column(STR, nullable=False)
    columns: dict[str, pa.Column] = {
        "title": text,
        "description": text,
        "source": pa.Column(STR, pa.Check.str_length(min_value=1), nullable=False, title="source"),
        "customer_tier": pa.Column(STR, pa.Check.str_length(min_value=1), nullable=False),
    }
    if labels == "required":
        columns[LABEL_COLUMN] = pa.Column(STR, pa.Check.str_length(min_value=1), nullable=False)
    if has_id:
        columns[ID_COLUMN] = pa.Column(
            str, pa.Check.str_length(min_value=1), nullable=False, unique=True
        )
    if has_time:
        columns[TIME_COLUMN] = pa.Column(
            STR,
            pa.Check(
                lambda s: (
                    (s.str.strip() == "")
                    | pd.Series(
                        pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601"),
                        index=s.index,
                    ).notna()
                ),
                error="is not an ISO 8601 timestamp",
            ),
            nullable=False,
        )
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(
                lambda df: (df["title"].str.strip() != "") | (df["description"].str.strip() != ""),
                error=_BOTH_EMPTY,
            )
        ],
        strict=False,
        coerce=False,
    )


_MESSAGES = {
    "str_length": "is empty",
    "field_uniqueness": "has duplicate values",
    "not_nullable": "is empty",
}


def _explain(exc: pa.errors.SchemaErrors, name: str, labels: Labels) -> DataContractError:
    cases = exc.failure_cases
    first = cases.iloc[0]
    column = first["column"] if isinstance(first["column"], str) else None
    check = str(first["check"])
    sel = cases["check"].astype(str) == check
    if column is not None:
        sel &= cases["column"] == column
    rows = sorted({int(i) + 1 for i in cases.loc[sel, "index"].dropna()})
    message = _MESSAGES.get(check.split("(")[0], check)
    if check.startswith("field_uniqueness"):
        message = "has duplicate values; ticket ids must be unique"
    if column == LABEL_COLUMN and labels == "required":
        message = "is empty; every reference row must be labelled"
    if column is None or message == _BOTH_EMPTY:
        column, message = None, f"has rows where {_BOTH_EMPTY}"
    return DataContractError(name, message, column=column, rows=rows)


def derive_ticket_ids(df: pd.DataFrame) -> pd.Series:
    """Derive stable ticket ids from content (title, description, source, tier, created_at).

    Identical rows get a running suffix so that ids stay unique within one file.

    Args:
        df: Tickets with the feature columns.

    Returns:
        A string Series of ids such as ``h-3f2a9c0d1e2b4a5c``.
    """
    parts = df[list(FEATURE_COLUMNS)].astype(str)
    if TIME_COLUMN in df:
        parts = parts.assign(**{TIME_COLUMN: df[TIME_COLUMN].astype(str)})
    # the same string as "\x1f".join(row), vectorised (ids must not change)
    joined = parts.iloc[:, 0].str.cat(parts.iloc[:, 1:], sep="\x1f")
    base = pd.Series(
        ["h-" + hashlib.sha256(j.encode("utf-8")).hexdigest()[:16] for j in joined],
        index=df.index,
        dtype=object,
    )
    occurrence = base.groupby(base).cumcount()
    return base.where(occurrence == 0, base + "-" + occurrence.astype(str))


def _rows_longer_than(data: bytes, width: int) -> list[int]:
    """Return the data rows (1 = first) with more fields than the header (error path only)."""
    text = io.StringIO(data.decode("utf-8-sig"), newline="")
    rows: list[int] = []
    try:
        for number, record in enumerate(csv.reader(text)):
            if number and len(record) > width:
                rows.append(number)
    except csv.Error:
        pass
    return rows


def parse_tickets(data: bytes, name: str, *, labels: Labels = "optional") -> pd.DataFrame:
    """Parse and validate a ticket CSV.

    Args:
        data: The raw bytes of the file.
        name: The file's path or URI, used in error messages.
        labels: ``"required"`` for the reference (every row labelled), ``"optional"`` for new
            production data (``label_urgency`` may be missing or empty).

    Returns:
        A DataFrame of strings with every original column, a ``ticket_id`` (derived when
        absent) and ``label_urgency`` (empty string when unlabelled).

    Raises:
        DataContractError: When the file breaks the contract.
    """
    _check_text(data, name)
    header = _header(data, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(
                io.BytesIO(data),
                encoding="utf-8-sig",
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                index_col=False,
                engine="c",
            )
    except (pd.errors.ParserWarning, pd.errors.ParserError) as exc:
        long_rows = _rows_longer_than(data, len(header))
        if long_rows:
            raise DataContractError(
                name,
                "has rows with more fields than the header (is a comma unquoted?)",
                rows=long_rows,
            ) from None
        detail = str(exc).replace("Error tokenizing data. C error: ", "").strip()
        if "EOF inside string" in detail:
            raise DataContractError(
                name, f"is not a parsable CSV: unterminated quote ({detail})"
            ) from None
        raise DataContractError(name, f"is not a parsable CSV: {detail}") from None
    except (csv.Error, ValueError) as exc:
        detail = str(exc).strip()
        raise DataContractError(name, f"is not a parsable CSV: {detail}") from None
    df.columns = pd.Index(header if len(header) == len(df.columns) else df.columns)
    if df.empty:
        raise DataContractError(name, "has a header but no rows")
    df = df.fillna("")  # short rows leave NaN even with na_filter=False
    if LABEL_COLUMN not in df:
        if labels == "required":
            raise DataContractError(
                name, "is missing; the reference must be labelled", column=LABEL_COLUMN
            )
        df[LABEL_COLUMN] = ""
    df[LABEL_COLUMN] = df[LABEL_COLUMN].str.strip()
    df.loc[df[LABEL_COLUMN].str.lower().isin(MISSING_LABELS), LABEL_COLUMN] = ""
    for col in CATEGORICAL_COLUMNS:
        df[col] = df[col].str.strip()
    has_id = ID_COLUMN in df
    if has_id:
        df[ID_COLUMN] = df[ID_COLUMN].str.strip()
    has_time = TIME_COLUMN in df
    import pandera.pandas as pa

    try:
        _schema(labels, has_id, has_time).validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        raise _explain(exc, name, labels) from None
    if not has_id:
        df.insert(0, ID_COLUMN, derive_ticket_ids(df))
    return df.reset_index(drop=True)


def read_ticket_file(path: str, *, labels: Labels = "optional") -> pd.DataFrame:
    """Read and validate a local ticket CSV (see :func:`parse_tickets`).

    Raises:
        DataContractError: When the file is missing or breaks the contract.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DataContractError(path, "does not exist") from None
    except IsADirectoryError:
        raise DataContractError(path, "is a directory, not a CSV file") from None
    return parse_tickets(data, path, labels=labels)


def to_csv_bytes(df: pd.DataFrame) -> bytes:
    """Serialise tickets deterministically as UTF-8 CSV.

    Minimal quoting with ``\n`` line endings, except that a frame with a carriage return in
    any cell is written with every field quoted: Python's csv writer only quotes characters of
    its line terminator, and an unquoted ``\r`` reads back as a line break.
    """
    has_cr = any("\r" in str(c) for c in df.columns) or any(
        df[c].astype(str).str.contains("\r", regex=False).any() for c in df.columns
    )
    quoting: Literal[0, 1] = 1 if has_cr else 0  # csv.QUOTE_ALL, csv.QUOTE_MINIMAL
    return df.to_csv(index=False, lineterminator="\n", quoting=quoting).encode("utf-8")


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Return the rows that carry a label."""
    return df[df[LABEL_COLUMN].astype(str).str.strip() != ""]


def sort_by_time(df: pd.DataFrame) -> pd.DataFrame:
    """Order rows by ``created_at`` when present (stable), else keep row order."""
    if TIME_COLUMN not in df:
        return df
    ts = pd.to_datetime(df[TIME_COLUMN], errors="coerce", utc=True, format="ISO8601")
    # Rows without a time (empty created_at) count as oldest; argsort would give them -1.
    key = ts.fillna(pd.Timestamp.min.tz_localize("UTC")).to_numpy(dtype="datetime64[ns]")
    return df.iloc[np.argsort(key, kind="stable")]
