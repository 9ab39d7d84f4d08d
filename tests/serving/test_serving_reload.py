"""Reloading: a newly promoted version, failures that keep the old model, coalescing, polling."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi.testclient import TestClient
from serving_support import ADMIN, TICKET, promote

from serving.app import create_app
from serving.metrics import Metrics
from serving.state import ModelService
from ticket_urgency.settings import Settings

pytestmark = pytest.mark.timeout(300)
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.mark.parametrize("uri_form", ["stage", "alias"])
def test_reload_moves_to_a_newly_promoted_version(registry: Settings, uri_form: str) -> None:
    extra = (
        {"model_uri_override": "models:/ticket_urgency@production"} if uri_form == "alias" else {}
    )
    settings = registry.model_copy(update=extra)
    with TestClient(create_app(settings)) as client:
        before = client.post("/predict", json=TICKET).json()
        assert before["model_version"] == 1
        promote(settings, "2")
        assert client.post("/predict", json=TICKET).json()["model_version"] == 1  # not yet
        r = client.post("/reload-model", headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "status": "reloaded",
            "previous_version": 1,
            "model_version": 2,
            "model_loaded": True,
        }
        after = client.post("/predict", json=TICKET).json()
        assert after["model_version"] == 2
        assert after["probabilities"] != before["probabilities"]
        assert client.get("/model").json()["version"] == 2
        assert "ticket_urgency_model_version 2.0" in client.get("/metrics").text


def test_first_reload_makes_a_modelless_api_ready(registry: Settings) -> None:
    settings = registry.model_copy(update={"model_name": "not_yet"})
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 503
        settings.model_name = "ticket_urgency"  # the name that has a Production version
        r = client.post("/reload-model", headers=AUTH)
        assert r.json() == {
            "status": "reloaded",
            "previous_version": None,
            "model_version": 1,
            "model_loaded": True,
        }
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json=TICKET).status_code == 200


def test_broken_new_version_keeps_the_old_model(registry: Settings) -> None:
    settings = registry
    with TestClient(create_app(settings)) as client:
        before = client.post("/predict", json=TICKET).json()
        promote(settings, "3")  # a regressor, no predict_proba -> fails the smoke test
        r = client.post("/reload-model", headers=AUTH)
        assert r.status_code == 502
        body = r.json()
        assert body["status"] == "failed" and body["model_version"] == 1
        assert body["model_loaded"] is True and "predict_proba" in body["reason"]
        assert client.post("/predict", json=TICKET).json() == before
        assert client.get("/ready").status_code == 200
        assert 'ticket_urgency_model_reloads_total{result="failed",trigger="request"} 1.0' in (
            client.get("/metrics").text
        )


def test_missing_artifacts_keep_the_old_model(registry: Settings) -> None:
    settings = registry
    with TestClient(create_app(settings)) as client:
        promote(settings, "4")  # its artifacts were deleted
        r = client.post("/reload-model", headers=AUTH)
        assert r.status_code in (502, 503), r.text
        assert r.json()["model_version"] == 1 and r.json()["model_loaded"] is True
        assert client.post("/predict", json=TICKET).json()["model_version"] == 1


def test_registry_down_keeps_the_old_model(
    registry: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    settings = registry
    with TestClient(create_app(settings)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        # point this worker's registry client at a server that is not there
        from mlflow import MlflowClient

        runtime.service._client = MlflowClient("http://127.0.0.1:9", "http://127.0.0.1:9")
        r = client.post("/reload-model", headers=AUTH)
        assert r.status_code == 503
        assert r.json()["model_version"] == 1 and "registry" in r.json()["reason"]
        assert client.post("/predict", json=TICKET).status_code == 200


def test_concurrent_reloads_coalesce_and_same_version_is_a_noop(registry: Settings) -> None:
    settings = registry
    service = ModelService(settings, Metrics())

    async def scenario() -> list[str]:
        results = await asyncio.gather(*(service.reload("request") for _ in range(6)))
        return [r.status for r in results]

    assert asyncio.run(scenario()) == ["reloaded"] * 6
    assert service.loads == 1
    start = time.perf_counter()
    again = asyncio.run(service.reload("request"))
    assert again.status == "unchanged" and service.loads == 1
    assert time.perf_counter() - start < 2.0


def test_polling_converges_without_a_reload_call(registry: Settings) -> None:
    settings = registry.model_copy(update={"poll_seconds": 0.3})
    with TestClient(create_app(settings)) as client:
        promote(settings, "2")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if client.get("/health").json()["model_version"] == 2:
                break
            time.sleep(0.2)
        assert client.get("/health").json()["model_version"] == 2


def test_registry_client_is_warmed_at_the_first_quiet_moment(registry: Settings) -> None:
    service = ModelService(registry, Metrics())
    idle = [0.0]  # seconds since the last prediction, as the batcher reports it

    async def scenario() -> tuple[bool, bool]:
        task = asyncio.create_task(service.warm_up(lambda: idle[0], quiet=0.5, check=0.01))
        await asyncio.sleep(0.2)
        waited = service._client is None and not task.done()  # busy: nothing imported yet
        idle[0] = 1.0
        await asyncio.wait_for(task, 120)
        return waited, service._client is not None

    assert asyncio.run(scenario()) == (True, True)
    # and the warmed client is the one reloads use
    assert service.resolve().version == "1"
