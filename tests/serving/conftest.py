"""Fixtures for the serving tests: small fitted pipelines and a real MLflow registry in tmp."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_support import make_settings, register, small_pipeline
from sklearn.pipeline import Pipeline

from ticket_urgency.contract import FEATURE_COLUMNS
from ticket_urgency.generate import generate_dataset
from ticket_urgency.settings import Settings


@pytest.fixture(scope="session")
def tickets() -> tuple[pd.DataFrame, pd.DataFrame]:
    """1,500 labelled reference tickets and 3,000 new ones."""
    return generate_dataset(1500, 3000, seed=7)


@pytest.fixture(scope="session")
def fitted(tickets: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Pipeline]:
    """Two fitted small pipelines (different C, so different probabilities)."""
    ref, _ = tickets
    x, y = ref[list(FEATURE_COLUMNS)], ref["label_urgency"]
    return {"v1": small_pipeline(1.0).fit(x, y), "v2": small_pipeline(0.2).fit(x, y)}


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, fitted: dict[str, Pipeline]
) -> Iterator[tuple[TestClient, Settings]]:
    """One app (module-wide) serving v1 of a fresh registry; read-only tests share it."""
    from serving.app import create_app

    tmp = tmp_path_factory.mktemp("served")
    settings = make_settings(tmp, batch_limit=50, max_body_bytes=4096)
    register(settings, fitted["v1"])
    with TestClient(create_app(settings)) as client:
        yield client, settings
