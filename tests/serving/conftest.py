"""Fixtures for the serving tests: small fitted pipelines and a real MLflow registry in tmp."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_support import build_registry, copy_registry, small_pipeline
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


@pytest.fixture(scope="session")
def registry_template(
    tmp_path_factory: pytest.TempPathFactory, fitted: dict[str, Pipeline]
) -> Path:
    """A registry with versions 1-4 (see ``build_registry``), built once per session."""
    return build_registry(tmp_path_factory.mktemp("registry"), fitted)


@pytest.fixture
def registry(tmp_path: Path, registry_template: Path) -> Settings:
    """Settings on a private copy of the registry: version 1 is Production."""
    return copy_registry(registry_template, tmp_path)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, registry_template: Path
) -> Iterator[tuple[TestClient, Settings]]:
    """One app (module-wide) serving version 1; read-only tests share it."""
    from serving.app import create_app

    tmp = tmp_path_factory.mktemp("served")
    settings = copy_registry(registry_template, tmp, batch_limit=50, max_body_bytes=4096)
    with TestClient(create_app(settings)) as client:
        yield client, settings


@pytest.fixture
def stop() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Server processes a test started: terminated (their output printed) at teardown."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        sys.stdout.write(out.decode(errors="replace"))  # shown when the test fails
