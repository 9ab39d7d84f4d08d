"""Schemathesis against the app's own OpenAPI schema, with a model loaded and the admin token
set: no 500s, and every response (status, content type, headers, body) conforms to the schema."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
from serving_support import ADMIN, make_settings, register, small_pipeline  # noqa: E402

from serving.app import create_app  # noqa: E402
from ticket_urgency.contract import FEATURE_COLUMNS  # noqa: E402
from ticket_urgency.generate import generate_dataset  # noqa: E402

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

MAX_EXAMPLES = 25
CALLS: dict[str, dict[int, int]] = {}


# The app exists at collection (its OpenAPI schema needs no model); the fixture below points
# its settings at a fresh registry with version 1 Production and runs the lifespan around the
# whole module, so /predict, /predict/batch and /invocations really score.
CFG = make_settings(
    Path("/nonexistent"), batch_limit=20, max_body_bytes=8192, mlflow_registry_uri=None
)
APP = create_app(CFG)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def loaded_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Version 1 registered and Production; the app's lifespan runs around the module."""
    tmp = tmp_path_factory.mktemp("fuzz")
    real = make_settings(tmp, mlflow_registry_uri=None)
    CFG.storage, CFG.mlflow_tracking_uri = real.storage, real.mlflow_tracking_uri
    ref, _ = generate_dataset(600, 10, seed=3)
    register(CFG, small_pipeline().fit(ref[list(FEATURE_COLUMNS)], ref["label_urgency"]))
    with TestClient(APP) as client:
        assert client.get("/ready").status_code == 200
        yield
    sys.stdout.write(f"fuzzed calls by operation and status: {CALLS}\n")  # shown with -s


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_endpoint_conforms(case: Any) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"} if case.path == "/reload-model" else None
    # /invocations takes a free-form protocol body (MLflow's dataframe_split / _records /
    # inputs, or CSV) that its schema can only describe loosely, so "schema-valid" bodies are
    # not all acceptable there; every other check (no 5xx, documented status codes, content
    # type, response schema, rejection of schema-violating input) still applies to it.
    excluded = [positive_data_acceptance] if case.path == "/invocations" else None
    response = case.call_and_validate(headers=headers, excluded_checks=excluded)
    assert response.status_code < 500 or case.path == "/reload-model", response.text
    seen = CALLS.setdefault(f"{case.method} {case.path}", {})
    seen[response.status_code] = seen.get(response.status_code, 0) + 1
