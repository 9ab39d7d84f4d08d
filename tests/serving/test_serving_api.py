"""The serving API in-process (TestClient): reply shapes, validation, limits, auth, 503s."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from serving_support import ADMIN, TICKET

from serving.app import create_app
from ticket_urgency.settings import Settings

pytestmark = pytest.mark.timeout(300)


def test_predict_reply_shape_and_probabilities(served: tuple[TestClient, Settings]) -> None:
    client, settings = served
    r = client.post("/predict", json=TICKET)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "prediction",
        "confidence",
        "probabilities",
        "needs_review",
        "model_version",
    }
    assert body["model_version"] == 1
    assert set(body["probabilities"]) == {"low", "medium", "high", "critical"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["prediction"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["needs_review"] == (body["confidence"] < settings.review_threshold)


def test_predict_echoes_ticket_id_and_ignores_extra_fields(
    served: tuple[TestClient, Settings],
) -> None:
    client, _ = served
    r = client.post("/predict", json={**TICKET, "ticket_id": 42, "label_urgency": "low"})
    assert r.status_code == 200
    assert r.json()["ticket_id"] == "42"


def test_batch_reply_in_input_order(served: tuple[TestClient, Settings]) -> None:
    client, _ = served
    tickets = [
        {**TICKET, "ticket_id": f"t{i}", "title": f"{TICKET['title']} {i}"} for i in range(20)
    ]
    r = client.post("/predict/batch", json={"tickets": tickets})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == 1
    assert [p["ticket_id"] for p in body["predictions"]] == [f"t{i}" for i in range(20)]
    single = client.post("/predict", json=tickets[3]).json()
    assert body["predictions"][3]["probabilities"] == single["probabilities"]


def test_batch_limit_is_422_naming_tickets(served: tuple[TestClient, Settings]) -> None:
    client, settings = served
    r = client.post("/predict/batch", json={"tickets": [TICKET] * (settings.batch_limit + 1)})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "tickets"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**TICKET, "source": 5}, "source"),
        ({k: v for k, v in TICKET.items() if k != "customer_tier"}, "customer_tier"),
        ({**TICKET, "title": "", "description": "  "}, "description"),
        ({**TICKET, "title": None, "description": None}, "description"),
        ({**TICKET, "title": ["a"]}, "title"),
    ],
)
def test_bad_input_is_422_with_the_field_named(
    served: tuple[TestClient, Settings], body: dict[str, object], field: str
) -> None:
    client, _ = served
    r = client.post("/predict", json=body)
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.json()


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'"text"', b""])
def test_malformed_json_is_422(served: tuple[TestClient, Settings], raw: bytes) -> None:
    client, _ = served
    r = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/predict", b'{"title": "caf\xe9", "source": "web", "customer_tier": "Gold"}'),
        (
            "/predict/batch",
            b'{"tickets": [{"title": "\xff", "source": "web", "customer_tier": "x"}]}',
        ),
    ],
)
def test_a_body_that_is_not_utf8_is_422_naming_the_byte(
    served: tuple[TestClient, Settings], path: str, raw: bytes
) -> None:
    client, _ = served
    r = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", raw.index(b"\xe9" if path == "/predict" else b"\xff")]
    assert "UTF-8" in error["msg"]


def test_empty_description_and_long_text_are_accepted(
    served: tuple[TestClient, Settings],
) -> None:
    client, settings = served
    assert client.post("/predict", json={**TICKET, "description": ""}).status_code == 200
    big = settings.max_body_bytes - 600  # as long as the cap allows
    r = client.post("/predict", json={**TICKET, "description": "Traceback line\n" * (big // 15)})
    assert r.status_code == 200, r.text


def test_oversized_body_is_413_before_parsing(served: tuple[TestClient, Settings]) -> None:
    client, settings = served
    huge = {**TICKET, "description": "x" * (settings.max_body_bytes + 10)}
    r = client.post("/predict", json=huge)
    assert r.status_code == 413
    # no Content-Length (chunked upload): the streamed bytes are counted
    chunks = iter([b'{"title": "a", "description": "', b"y" * settings.max_body_bytes, b'"}'])
    r = client.post("/predict", content=chunks, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    # not even invalid JSON is parsed once the cap is exceeded
    r = client.post("/predict", content=b"{" * (settings.max_body_bytes + 1))
    assert r.status_code == 413


def test_invocations_in_the_shapes_mlflow_clients_send(
    served: tuple[TestClient, Settings],
) -> None:
    from mlflow.utils.proto_json_utils import dump_input_data

    client, _ = served
    frame = pd.DataFrame([TICKET, {**TICKET, "title": "Server down", "description": ""}])
    expected = [
        client.post("/predict", json=row).json()["prediction"] for row in frame.to_dict("records")
    ]
    payloads = [
        dump_input_data(frame),  # what ScoringServerClient sends for a DataFrame (split)
        json.dumps({"dataframe_records": frame.to_dict(orient="records")}),
        json.dumps({"inputs": frame.to_dict(orient="records")}),
        json.dumps({"inputs": frame.to_dict(orient="list")}),
        json.dumps({"instances": frame.to_dict(orient="records")}),
    ]
    for payload in payloads:
        r = client.post(
            "/invocations", content=payload, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 200, (payload, r.text)
        assert r.json() == {"predictions": expected}
    r = client.post(
        "/invocations", content=frame.to_csv(index=False), headers={"Content-Type": "text/csv"}
    )
    assert r.json() == {"predictions": expected}


def test_invocations_errors(served: tuple[TestClient, Settings]) -> None:
    client, _ = served
    r = client.post("/invocations", json={"dataframe_records": [{"title": "x"}]})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["detail"]]
    assert ["body", "dataframe_records", 0, "source"] in locs
    assert client.post("/invocations", json={"nope": 1}).status_code == 422
    r = client.post("/invocations", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_health_ready_model_and_metrics(served: tuple[TestClient, Settings]) -> None:
    client, settings = served
    assert client.get("/health").json() == {
        "status": "ok",
        "model_loaded": True,
        "model_version": 1,
    }
    assert client.get("/ready").status_code == 200
    info = client.get("/model").json()
    assert info["name"] == settings.model_name and info["version"] == 1
    assert info["uri"] == f"models:/{settings.model_name}/Production"
    assert info["run_id"] and info["metrics"] == {"macro_f1": 0.5}
    assert info["fast_path"] is True
    client.post("/predict", json=TICKET)
    text = client.get("/metrics").text
    assert "ticket_urgency_predictions_total{predicted_class=" in text
    assert (
        'ticket_urgency_http_requests_total{endpoint="/predict",method="POST",status="200"}' in text
    )
    assert 'ticket_urgency_http_request_duration_seconds_bucket{endpoint="/predict"' in text
    assert "ticket_urgency_model_version 1.0" in text
    assert 'ticket_urgency_model_reloads_total{result="reloaded",trigger="startup"} 1.0' in text
    assert "ticket_urgency_prediction_log_failures_total 0.0" in text


def test_reload_auth(served: tuple[TestClient, Settings]) -> None:
    client, _ = served
    assert client.post("/reload-model").status_code == 401
    assert client.post("/reload-model", headers={"Authorization": "Basic abc"}).status_code == 401
    wrong = client.post("/reload-model", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    ok = client.post("/reload-model", headers={"Authorization": f"Bearer {ADMIN}"})
    assert ok.status_code == 200
    assert ok.json() == {
        "status": "unchanged",
        "previous_version": 1,
        "model_version": 1,
        "model_loaded": True,
    }


def test_reload_refused_without_admin_token(registry: Settings) -> None:
    with TestClient(create_app(registry.model_copy(update={"admin_token": None}))) as client:
        r = client.post("/reload-model", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403
        assert "TICKET_URGENCY_ADMIN_TOKEN" in r.json()["detail"]


def test_starts_without_a_model_and_answers_503(registry: Settings) -> None:
    settings = registry.model_copy(update={"model_name": "nothing_registered"})
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["model_loaded"] is False
        assert client.get("/ready").status_code == 503
        r = client.post("/predict", json=TICKET)
        assert r.status_code == 503
        assert "no model is loaded" in r.json()["detail"]
        assert client.post("/predict/batch", json={"tickets": [TICKET]}).status_code == 503
        assert client.post("/invocations", json={"inputs": [TICKET]}).status_code == 503
        assert client.get("/model").status_code == 503
        r = client.post("/reload-model", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 503
        assert r.json()["model_loaded"] is False and r.json()["status"] == "failed"
        assert "no model" in r.json()["reason"]


def test_optional_predict_token(registry: Settings) -> None:
    settings = registry.model_copy(update={"predict_token": SecretStr("p-token")})
    with TestClient(create_app(settings)) as client:
        assert client.post("/predict", json=TICKET).status_code == 401
        bad = client.post("/predict", json=TICKET, headers={"Authorization": "Bearer x"})
        assert bad.status_code == 403
        good = client.post("/predict", json=TICKET, headers={"Authorization": "Bearer p-token"})
        assert good.status_code == 200
        assert client.get("/health").status_code == 200  # health stays open
