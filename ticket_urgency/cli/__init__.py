"""The ``ticket-urgency`` command line. Each module registers its commands on ``app``."""

from ticket_urgency.cli import (
    data,  # noqa: F401  (registers commands)
    drift,  # noqa: F401
    loop,  # noqa: F401
    model,  # noqa: F401
    serve,  # noqa: F401
)
from ticket_urgency.cli.app import app

__all__ = ["app"]
