"""Closing the loop: served predictions become new data; batch scoring of ticket files."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ticket_urgency.cli.app import (
    app,
    emit_json,
    fail,
    open_configured_storage,
    settings,
    user_errors,
)

PROGRESS_MIN_ROWS = 20_000
"""Show a progress bar when a file has at least this many rows."""


def _parse_when(value: str | None, option: str) -> date | datetime | None:
    if value is None:
        return None
    text = value.strip()
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} must be an ISO date or time such as 2026-12-01, not {value!r}")


@app.command("ingest-predictions")
def ingest_predictions(
    since: Annotated[
        str | None,
        typer.Option(help="Only predictions served at or after this UTC date/time (ISO 8601)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only predictions served before this UTC date/time.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Turn the served-prediction log (predictions/<date>/) into new data (unlabelled)."""
    from ticket_urgency.ingest import ingest_predictions as do_ingest

    start, end = _parse_when(since, "--since"), _parse_when(until, "--until")
    with user_errors():
        report = do_ingest(open_configured_storage(), start, end)
    if json_out:
        emit_json(report.to_dict())
        return
    if not report.predictions:
        period = f" since {report.since}" if report.since else ""
        typer.echo(f"no served predictions{period}; nothing ingested")
        return
    days = ", ".join(report.days) if len(report.days) <= 5 else f"{len(report.days)} days"
    typer.echo(
        f"Read {report.predictions} served predictions ({days}) -> {report.rows} tickets"
        + (f" ({report.invalid} without source/tier/text skipped)" if report.invalid else "")
    )
    typer.echo(
        f"New production:     {report.new_uri}  [{report.new_rows} rows: {report.added} added, "
        f"{report.replaced} replaced, {report.unchanged} unchanged, {report.dropped} dropped "
        "(id already in reference)]"
    )
    typer.echo(
        f"Combined (retrain): {report.combined_uri}  [{report.combined_rows} rows; "
        "served tickets join it when their labels are uploaded]"
    )


@app.command()
def predict(
    in_path: Annotated[
        str, typer.Option("--in", help="Ticket CSV to score: a path or gs://bucket/file.csv.")
    ],
    out_path: Annotated[
        str, typer.Option("--out", help="Scored CSV to write: a path or gs://bucket/file.csv.")
    ],
    model_uri: Annotated[
        str | None,
        typer.Option(help="Registry URI (default TICKET_URGENCY_MODEL_URI, the Production one)."),
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows scored per step.")] = 5000,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Score a ticket CSV with the Production model: adds prediction, confidence,
    needs_review and model_version to every row."""
    from ticket_urgency.batch import predict_file

    if _same_file(in_path, out_path):
        fail("--out must differ from --in")
    bar = _Bar()
    with user_errors():
        try:
            result = predict_file(
                settings(),
                in_path,
                out_path,
                model_uri=model_uri,
                chunk_rows=chunk_rows,
                progress=bar.update,
            )
        finally:
            bar.close()
    if json_out:
        emit_json(result.to_dict())
        return
    mix = ", ".join(f"{k} {v}" for k, v in result.predictions.items())
    typer.echo(
        f"Scored {result.rows} tickets with {result.model_uri} (v{result.model_version}) "
        f"in {result.seconds:.1f}s -> {result.output}"
    )
    typer.echo(f"Predictions: {mix}; {result.needs_review} need review")


def _same_file(a: str, b: str) -> bool:
    if a.startswith("gs://") or b.startswith("gs://"):
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).resolve() == Path(b).resolve()


class _Bar:
    """A progress bar on stderr, opened on the first update of a large file."""

    def __init__(self) -> None:
        self._bar: Any = None

    def update(self, done: int, total: int) -> None:
        if self._bar is None and total >= PROGRESS_MIN_ROWS:
            self._bar = typer.progressbar(length=total, label="scoring", file=sys.stderr)
            self._bar.__enter__()
        if self._bar is not None:
            self._bar.update(done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
