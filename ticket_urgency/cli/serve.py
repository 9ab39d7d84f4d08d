"""The ``serve`` command: the FastAPI app under uvicorn."""

from __future__ import annotations

import shutil
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from ticket_urgency.cli.app import app, fail, settings, user_errors


class EventLoop(StrEnum):
    """uvicorn's event loop implementations."""

    asyncio = "asyncio"
    uvloop = "uvloop"
    auto = "auto"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for all).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    poll_seconds: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Re-resolve the model URI this often and load a new Production version "
            "(0 = off; default TICKET_URGENCY_POLL_SECONDS).",
        ),
    ] = None,
    loop: Annotated[
        EventLoop,
        typer.Option(
            help="Event loop: asyncio (default; fair to every connection: the lowest p99 "
            "under load), uvloop (a few percent more req/s, a much longer latency tail) or auto.",
        ),
    ] = EventLoop.asyncio,
    access_log: Annotated[bool, typer.Option(help="Log every request (slower).")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Start the prediction API (POST /predict, /reload-model, GET /health, /metrics, ...).

    With --workers N every worker loads the model; a reload request received by one worker
    is passed to the others through a marker file in a temporary directory of this run, and
    /metrics aggregates all workers (prometheus-client multiprocess mode).
    """
    from ticket_urgency import registry_prefetch
    from ticket_urgency.predictor import parse_model_uri
    from ticket_urgency.settings import export_environment

    with user_errors():
        try:
            parse_model_uri(settings().model_uri)
        except ValueError as exc:
            fail(str(exc))
    env: dict[str, str] = {}
    if poll_seconds is not None:
        env["TICKET_URGENCY_POLL_SECONDS"] = str(poll_seconds)
    run_dir: Path | None = None
    if workers > 1:
        run_dir = Path(tempfile.mkdtemp(prefix="ticket-urgency-serve-"))
        (run_dir / "prometheus").mkdir()
        env["TICKET_URGENCY_RELOAD_MARKER"] = str(run_dir / "reload-marker.json")
        env["PROMETHEUS_MULTIPROC_DIR"] = str(run_dir / "prometheus")
    if env:
        export_environment(env)
    try:
        if workers == 1:
            # This process serves: a forked child does the registry look-up (SQLAlchemy & co.)
            # while this process imports the server and scikit-learn.
            registry_prefetch.start(settings())
        import uvicorn

        uvicorn.run(
            "serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop=loop.value,
            access_log=access_log,
            log_level=log_level,
            timeout_graceful_shutdown=15,
        )
    finally:
        registry_prefetch.discard()
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)
