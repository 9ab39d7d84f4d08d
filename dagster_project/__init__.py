"""Dagster definitions of ticket_urgency: assets, resources, checks, sensors, schedules."""

from dagster_project.definitions import defs

__all__ = ["defs"]
