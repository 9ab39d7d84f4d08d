"""The MLflow scoring protocol of ``POST /invocations`` (as ``mlflow models serve`` speaks it)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from serving.schemas import TicketIn

_ROWS = TypeAdapter(list[TicketIn])
JSON_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")


class InvocationError(Exception):
    """A request the scoring protocol cannot take; ``status`` is the HTTP code."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def _records_from_split(split: Any) -> list[Any]:
    if not isinstance(split, dict) or "data" not in split:
        raise InvocationError(
            422, [{"loc": ["body", "dataframe_split"], "msg": "needs 'columns' and 'data'"}]
        )
    columns = split.get("columns")
    data = split["data"]
    if not isinstance(data, list):
        raise InvocationError(
            422, [{"loc": ["body", "dataframe_split", "data"], "msg": "must be a list of rows"}]
        )
    if columns is None:
        raise InvocationError(
            422, [{"loc": ["body", "dataframe_split", "columns"], "msg": "column names needed"}]
        )
    out = []
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvocationError(
                422,
                [
                    {
                        "loc": ["body", "dataframe_split", "data", i],
                        "msg": f"row must be a list of {len(columns)} values",
                    }
                ],
            )
        out.append(dict(zip(columns, row, strict=True)))
    return out


def _records_from_inputs(inputs: Any, key: str) -> list[Any]:
    if isinstance(inputs, dict):  # column-oriented {"title": [...], ...}
        lists = {k: v if isinstance(v, list) else [v] for k, v in inputs.items()}
        lengths = {len(v) for v in lists.values()}
        if len(lengths) > 1:
            raise InvocationError(
                422, [{"loc": ["body", key], "msg": "columns have different lengths"}]
            )
        n = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in lists.items()} for i in range(n)]
    if isinstance(inputs, list):
        return inputs
    raise InvocationError(422, [{"loc": ["body", key], "msg": "must be a list of records"}])


def _missing_columns(header: Sequence[str]) -> str | None:
    """What a CSV header lacks (every ticket needs source, tier and a title or description)."""
    names = {h.strip() for h in header}
    missing = [c for c in ("source", "customer_tier") if c not in names]
    if not names & {"title", "description"}:
        missing.append("title or description")
    return ", ".join(missing) or None


def parse_invocation(body: bytes, content_type: str | None) -> tuple[list[TicketIn], str]:
    """Parse a scoring request into validated tickets.

    Args:
        body: The raw request body.
        content_type: Its ``Content-Type`` header (JSON or CSV).

    Returns:
        The tickets and the key the rows came under (for error locations).

    Raises:
        InvocationError: 415 for other content types, 422 for malformed or invalid rows.
    """
    mime, _, params = (content_type or "application/json").partition(";")
    mime = mime.strip().lower()
    if "charset" in params.lower() and "utf-8" not in params.lower():
        raise InvocationError(415, "only UTF-8 is supported")
    key: str
    if mime == "text/csv":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvocationError(422, f"body is not UTF-8: {exc}") from exc
        reader = csv.DictReader(io.StringIO(text))
        missing = _missing_columns(reader.fieldnames or [])
        if missing:
            raise InvocationError(
                422,
                [{"loc": ["body", "csv"], "msg": f"CSV header lacks {missing}", "type": "missing"}],
            )
        records: list[Any] = list(reader)
        key = "csv"
    elif mime in ("application/json", ""):
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvocationError(
                422, [{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]
            ) from exc
        if not isinstance(payload, dict) or not any(k in payload for k in JSON_KEYS):
            raise InvocationError(
                422,
                [
                    {
                        "loc": ["body"],
                        "msg": "expected one of the keys " + ", ".join(JSON_KEYS),
                        "type": "missing",
                    }
                ],
            )
        key = next(k for k in JSON_KEYS if k in payload)
        if key == "dataframe_split":
            records = _records_from_split(payload[key])
        elif key == "dataframe_records":
            if not isinstance(payload[key], list):
                raise InvocationError(
                    422, [{"loc": ["body", key], "msg": "must be a list of records"}]
                )
            records = payload[key]
        else:
            records = _records_from_inputs(payload[key], key)
    else:
        raise InvocationError(
            415, f"unsupported content type {mime!r}; use application/json or text/csv"
        )
    try:
        tickets = _ROWS.validate_python(records)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", key, *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise InvocationError(422, errors) from exc
    return tickets, key
