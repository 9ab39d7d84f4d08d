"""Model commands: train, promote, rollback."""

from __future__ import annotations

from typing import Annotated

import typer

from ticket_urgency.cli.app import app, emit_json, settings, user_errors


@app.command()
def train(
    data: Annotated[
        str,
        typer.Option(help="combined (falls back to reference), reference, or a labelled CSV path."),
    ] = "combined",
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Train, evaluate, log the run to MLflow and register a new model version."""
    from ticket_urgency.training import train as do_train

    def progress(message: str) -> None:
        typer.echo(f"... {message}", err=True)

    with user_errors():
        result = do_train(settings(), data, progress=progress)
    if json_out:
        emit_json({"run_id": result.run_id, "version": result.version, "metrics": result.metrics})
        return
    m = result.metrics
    typer.echo(f"run_id:  {result.run_id}")
    typer.echo(f"version: {result.model_name} v{result.version}")
    typer.echo(
        f"metrics: macro_f1={m['macro_f1']:.4f} accuracy={m['accuracy']:.4f} "
        f"(baseline macro_f1={m.get('baseline_macro_f1', float('nan')):.4f}; "
        f"{result.n_train} train / {result.n_test} held-out rows)"
    )


@app.command()
def promote(
    version: Annotated[
        int | None, typer.Option(help="Challenger version (default: the newest).")
    ] = None,
    eval_path: Annotated[
        str | None,
        typer.Option("--eval", help="Labelled CSV to evaluate on instead of the stored data."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Promote whatever the gate says.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Champion/challenger gate, then stage Production + alias production."""
    from ticket_urgency.registry import promote as do_promote

    with user_errors():
        decision = do_promote(settings(), version=version, eval_path=eval_path, force=force)
    if json_out:
        emit_json(decision.to_dict())
        return
    verb = {"promoted": "promoted", "forced": "promoted (forced)"}.get(decision.decision)
    if verb:
        typer.echo(
            f"{decision.model_name} v{decision.challenger_version} {verb} to Production "
            f"(previous: {decision.champion_version or 'none'}): {decision.reason}"
        )
    elif decision.decision == "unchanged":
        typer.echo(f"nothing to do: {decision.reason}")
    else:
        typer.echo(
            f"refused: {decision.model_name} v{decision.challenger_version} stays out of "
            f"Production (v{decision.champion_version} keeps serving): {decision.reason}"
        )


@app.command()
def rollback(
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Put the previous Production version back (stage and alias)."""
    from ticket_urgency.registry import rollback as do_rollback

    with user_errors():
        result = do_rollback(settings())
    if json_out:
        emit_json(result.to_dict())
        return
    typer.echo(
        f"{result.model_name}: v{result.production_version} is back in Production "
        f"(v{result.previous_version} archived)"
    )
