"""Reloads that fail: the registry unreadable, an artifact deleted, a model that raises on
predict, a model with another signature. Each time the old model keeps serving, /health shows
the old version, the caller gets a 5xx with the reason and the log says why."""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
from serving_support import ADMIN, TICKET, make_settings, promote, register, small_pipeline  # noqa: E402

from serving.app import create_app  # noqa: E402
from ticket_urgency.contract import FEATURE_COLUMNS  # noqa: E402
from ticket_urgency.generate import generate_dataset  # noqa: E402
from ticket_urgency.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def _explode(frame: Any) -> Any:
    raise RuntimeError("boom: this model cannot predict")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """1: good (Production); 2: raises on predict; 3: other columns; 4: artifacts deleted."""
    from mlflow import MlflowClient

    settings = make_settings(tmp_path_factory.mktemp("failed-reloads"), mlflow_registry_uri=None)
    ref, _ = generate_dataset(600, 10, seed=11)
    x, y = ref[list(FEATURE_COLUMNS)], ref["label_urgency"]
    good = small_pipeline().fit(x, y)
    register(settings, good)
    raising = Pipeline([("f", FunctionTransformer(lambda f: f)), ("m", small_pipeline().fit(x, y))])
    raising.fit(x, y)
    raising.steps[0][1].func = _explode  # pickled by value with the model
    register(settings, raising, promote_it=False)
    renamed = x.rename(columns={"title": "subject", "description": "body"})
    other = small_pipeline()
    other.steps[0][1].transformers = [
        ("title", *other.steps[0][1].transformers[0][1:2], "subject"),
        ("desc", *other.steps[0][1].transformers[1][1:2], "body"),
        other.steps[0][1].transformers[2],
    ]
    register(settings, other.fit(renamed, y), promote_it=False)
    v4 = register(settings, good, promote_it=False)
    uri = settings.mlflow_tracking_uri
    source = MlflowClient(uri, uri).get_model_version_download_uri(settings.model_name, v4)
    shutil.rmtree(source.removeprefix("file://"))
    return settings


@pytest.fixture
def client(registry: Settings) -> Iterator[TestClient]:
    promote(registry, "1")
    with TestClient(create_app(registry)) as c:
        assert c.get("/health").json()["model_version"] == 1
        yield c


def _assert_failed_and_still_v1(
    client: TestClient, caplog: pytest.LogCaptureFixture, code: int, reason: str
) -> None:
    before = client.post("/predict", json=TICKET).json()
    with caplog.at_level(logging.WARNING, logger="serving.state"):
        r = client.post("/reload-model", headers=AUTH)
    assert r.status_code == code, r.text
    body = r.json()
    assert body["status"] == "failed" and body["model_version"] == 1, body
    assert body["previous_version"] == 1 and body["model_loaded"] is True
    assert reason in body["reason"], body["reason"]
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "serving.state"]
    assert any("model reload failed" in m and reason in m for m in logged), logged
    assert client.get("/health").json() == {
        "status": "ok",
        "model_loaded": True,
        "model_version": 1,
    }
    assert client.get("/ready").status_code == 200
    assert client.post("/predict", json=TICKET).json() == before
    assert client.post("/predict/batch", json={"tickets": [TICKET] * 3}).status_code == 200


def test_registry_unreadable_keeps_the_old_model(
    registry: Settings, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    db = Path(registry.mlflow_tracking_uri.removeprefix("sqlite:///"))
    saved = db.read_bytes()
    try:
        with db.open("r+b") as f:  # in place: open connections see it too (root ignores chmod)
            f.write(b"this is not a database" * 4096)
        _assert_failed_and_still_v1(client, caplog, 503, "model registry unavailable")
    finally:
        db.write_bytes(saved)
    # once the registry is back, the next reload works again
    promote(registry, "1")
    assert client.post("/reload-model", headers=AUTH).json()["status"] == "unchanged"


def test_deleted_artifact_keeps_the_old_model(
    registry: Settings, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    promote(registry, "4")
    _assert_failed_and_still_v1(client, caplog, 502, "could not load models:/ticket_urgency/4")


def test_model_raising_on_predict_keeps_the_old_model(
    registry: Settings, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    promote(registry, "2")
    _assert_failed_and_still_v1(client, caplog, 502, "boom: this model cannot predict")


def test_model_with_another_signature_keeps_the_old_model(
    registry: Settings, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    promote(registry, "3")
    _assert_failed_and_still_v1(client, caplog, 502, "subject")
