"""Fixtures for the Dagster tests: small uploaded data, resources and a persistent instance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dagster import DagsterInstance

from dagster_project.resources import build_resources
from ticket_urgency.datasets import upload
from ticket_urgency.generate import generate_dataset
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import LocalStorage


@pytest.fixture
def uploaded(local_storage: LocalStorage) -> LocalStorage:
    """Small reference + new data (with drift) stored by the library's upload."""
    reference, new = generate_dataset(400, 300, drift="all", seed=7)
    upload(local_storage, reference, new)
    return local_storage


@pytest.fixture
def resources() -> dict[str, Any]:
    """The local resource set built from the per-test settings."""
    return build_resources(get_settings())


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """An in-memory Dagster instance shared by the runs of one test."""
    with DagsterInstance.ephemeral() as inst:
        yield inst
