"""The typer application and the helpers every command uses."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from ticket_urgency.settings import Settings, get_settings

app = typer.Typer(
    name="ticket-urgency",
    help="Classify support-ticket urgency: generate, upload, drift, train, promote, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_USER_ERROR = 2
EXIT_DRIFT = 3


def settings() -> Settings:
    """Return the process settings."""
    return get_settings()


def fail(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print one sentence to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the project's expected failures into one-line errors without tracebacks."""
    from ticket_urgency.contract import DataContractError
    from ticket_urgency.datasets import DatasetMissingError, ReferenceConflictError
    from ticket_urgency.errors import UserFacingError
    from ticket_urgency.storage import StorageError

    try:
        yield
    except (DataContractError, ReferenceConflictError, DatasetMissingError, UserFacingError) as exc:
        fail(str(exc))
    except StorageError as exc:
        fail(f"storage failed: {exc}", code=1)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        fail(str(exc))


def open_configured_storage() -> Any:
    """Open the storage named by ``TICKET_URGENCY_STORAGE``."""
    from ticket_urgency.storage import open_storage

    s = settings()
    return open_storage(s.storage, s)
