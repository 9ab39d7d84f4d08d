"""The Dagster code location: ``dagster dev -m dagster_project`` loads :data:`defs`."""

from __future__ import annotations

from dagster import Definitions, in_process_executor, multiprocess_executor

from dagster_project.assets.data import combined_tickets, new_tickets, reference_tickets
from dagster_project.checks import DATA_CHECKS
from dagster_project.resources import build_resources
from ticket_urgency.settings import Settings, get_settings


def build_defs(settings: Settings | None = None) -> Definitions:
    """Build the definitions for ``settings.deployment`` (local: in-process executor)."""
    s = settings or get_settings()
    executor = in_process_executor if s.deployment == "local" else multiprocess_executor
    return Definitions(
        assets=[reference_tickets, new_tickets, combined_tickets],
        asset_checks=DATA_CHECKS,
        resources=build_resources(s),
        executor=executor,
    )


defs = build_defs()
