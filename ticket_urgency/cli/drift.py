"""The ``drift`` command: NannyML drift of the new data against the frozen reference."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ticket_urgency.cli.app import (
    EXIT_DRIFT,
    app,
    emit_json,
    open_configured_storage,
    settings,
    user_errors,
)


@app.command()
def drift(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the JSON report (one object) on stdout.")
    ] = False,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit with code 3 when drift is detected.")
    ] = False,
) -> None:
    """Compare new data with the reference; store the JSON + HTML report under monitoring/."""
    from ticket_urgency.drift import run_drift

    start = time.perf_counter()

    def progress(message: str) -> None:
        typer.echo(f"[drift {time.perf_counter() - start:5.1f}s] {message}", err=True)

    with user_errors():
        storage = open_configured_storage()
        report = run_drift(settings(), storage, progress=progress)
    if json_out:
        emit_json(report.to_dict())
    else:
        _print_summary(report.to_dict())
    if fail_on_drift and report.drift_detected:
        raise typer.Exit(EXIT_DRIFT)


def _print_summary(report: dict[str, object]) -> None:
    verdict = "DRIFT DETECTED" if report["drift_detected"] else "no drift"
    if report["status"] == "insufficient_data":
        verdict = "INSUFFICIENT DATA (no verdict)"
    typer.echo(f"Drift: {verdict} — {report['message']}")
    rows = report["rows"]
    assert isinstance(rows, dict)
    typer.echo(f"Rows: reference {rows['reference']}, new {rows['new']}")
    features = report["features"]
    assert isinstance(features, dict)
    typer.echo(f"{'feature':<22}{'effect':>9}{'threshold':>11}{'adj. p':>11}  verdict")
    for name, f in features.items():
        mark = "ALERT" if f["alert"] else "ok"
        typer.echo(
            f"{name:<22}{f['effect_size']:>9.3f}{f['threshold']:>11.2f}"
            f"{f['p_value_adjusted']:>11.2g}  {mark}"
        )
    multi = report["multivariate"]
    assert isinstance(multi, dict)
    if "alerted_chunks" in multi:
        typer.echo(
            f"Multivariate (reconstruction error): {multi['alerted_chunks']} of "
            f"{multi['chunks_total']} chunks above NannyML's threshold"
        )
    model = report["model"]
    assert isinstance(model, dict)
    if model.get("status") == "ok":
        est = model.get("estimated_performance", {})
        pred = model.get("prediction_drift", {})
        assert isinstance(est, dict) and isinstance(pred, dict)
        line = (
            f"Model v{model['version']}: prediction drift {'ALERT' if pred.get('alert') else 'ok'}"
        )
        if "f1_macro" in est:
            line += f", estimated macro-F1 {est['f1_macro']:.3f}"
        ref_perf = model.get("reference_performance", {})
        if isinstance(ref_perf, dict) and "f1_macro" in ref_perf:
            line += f" (held-out reference {ref_perf['f1_macro']:.3f})"
        typer.echo(line)
    else:
        typer.echo(f"Model: skipped ({model.get('reason')})")
    typer.echo(f"Report: {report['report_uri']}")
    typer.echo(f"HTML:   {report['html_uri']}")
