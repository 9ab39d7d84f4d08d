"""Data commands: generate and upload."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ticket_urgency.cli.app import (
    app,
    emit_json,
    fail,
    open_configured_storage,
    settings,
    user_errors,
)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the CSVs into.")],
    rows: Annotated[int, typer.Option(min=1, help="Reference rows (tickets.csv).")] = 3000,
    new_rows: Annotated[int, typer.Option(min=0, help="New rows (new_tickets.csv).")] = 1000,
    drift: Annotated[
        str, typer.Option(help="Drift in the new data: none, source, tier, topic or all.")
    ] = "none",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same files.")] = 0,
) -> None:
    """Write realistic synthetic OUT/tickets.csv and OUT/new_tickets.csv."""
    from ticket_urgency.contract import to_csv_bytes
    from ticket_urgency.generate import DRIFT_SCENARIOS, generate_dataset

    if drift not in DRIFT_SCENARIOS:
        fail(f"--drift must be one of {', '.join(DRIFT_SCENARIOS)}, not {drift!r}")
    reference, new = generate_dataset(rows, new_rows, drift=drift, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("tickets.csv", reference), ("new_tickets.csv", new)):
        (out / name).write_bytes(to_csv_bytes(frame))
    typer.echo(f"reference: {out / 'tickets.csv'} ({len(reference)} rows)")
    typer.echo(f"new:       {out / 'new_tickets.csv'} ({len(new)} rows, drift={drift})")


@app.command()
def upload(
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Labelled reference CSV (write-once).")
    ] = None,
    new: Annotated[
        Path | None, typer.Option("--new", help="New production CSV (labels optional).")
    ] = None,
    replace_reference: Annotated[
        bool,
        typer.Option(help="Archive the stored reference and replace it with a different one."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Validate, store the reference (write-once), merge new data, rebuild combined."""
    from ticket_urgency.contract import read_ticket_file
    from ticket_urgency.datasets import upload as do_upload

    if reference is None and new is None:
        fail("give --reference, --new or both")
    with user_errors():
        ref_df = read_ticket_file(str(reference), labels="required") if reference else None
        new_df = read_ticket_file(str(new), labels="optional") if new else None
        storage = open_configured_storage()
        report = do_upload(
            storage,
            ref_df,
            new_df,
            replace_reference=replace_reference,
            retention_days=settings().retention_days,
        )
    if json_out:
        emit_json(report.to_dict())
        return
    ref_note = report.reference_status
    if report.archived_reference_uri:
        ref_note += f", old one archived at {report.archived_reference_uri}"
    typer.echo(
        f"Reference (frozen): {report.reference_uri}  [{report.reference_rows} rows, {ref_note}]"
    )
    typer.echo(
        f"New production:     {report.new_uri}  [{report.new_rows} rows: {report.added} added, "
        f"{report.replaced} replaced, {report.unchanged} unchanged, {report.dropped} dropped "
        "(id already in reference)]"
    )
    typer.echo(f"Combined (retrain): {report.combined_uri}  [{report.combined_rows} rows]")
    if report.new_labels:
        typer.echo(f"note: new label values not in the reference: {', '.join(report.new_labels)}")
