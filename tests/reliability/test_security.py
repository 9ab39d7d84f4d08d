"""Security: admin auth on /reload-model, no secret or personal data in logs, 413 before
parsing, the model comes only from the configured registry, masked MLflow input examples."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
sys.path.insert(0, str(Path(__file__).parent))
from serving_support import ADMIN, TICKET, make_settings, register, small_pipeline  # noqa: E402
from test_reload_under_load import serve  # noqa: E402

from serving.app import create_app  # noqa: E402
from ticket_urgency.contract import FEATURE_COLUMNS  # noqa: E402
from ticket_urgency.generate import generate_dataset  # noqa: E402
from ticket_urgency.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

WRONG = "not-the-admin-token-0451"
EMAILS = ("jane.doe@example.com", "ops+alerts@corp.example.org")
PHONES = ("+1 (555) 123-4567", "555-867-5309", "+44 20 7946 0958")
PII_TICKET = {
    **TICKET,
    "title": f"Call me at {PHONES[0]} or mail {EMAILS[0]}",
    "description": f"Escalate to {EMAILS[1]}, phone {PHONES[1]} / {PHONES[2]}.",
    "ticket_id": EMAILS[0],
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """ticket_urgency v1 (Production) and an ``evil`` model that must never be served."""
    settings = make_settings(tmp_path_factory.mktemp("security"), mlflow_registry_uri=None)
    ref, _ = generate_dataset(600, 10, seed=13)
    x, y = ref[list(FEATURE_COLUMNS)], ref["label_urgency"]
    register(settings, small_pipeline().fit(x, y))
    register(settings.model_copy(update={"model_name": "evil"}), small_pipeline(0.2).fit(x, y))
    return settings


@pytest.fixture(scope="module")
def server(registry: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A real ``serve`` with debug logging and the access log on (the most it ever logs)."""
    log = tmp_path_factory.mktemp("security-log") / "serve.log"
    proc, base = serve(registry, log, "--access-log", "--log-level", "debug")
    info: dict = {"base": base, "log": log, "proc": proc}
    try:
        yield info
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def _stop(server: dict) -> str:
    proc = server["proc"]
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)  # the prediction log is flushed on shutdown
    return server["log"].read_text(errors="replace")


def test_reload_needs_the_admin_token(server: dict) -> None:
    base = server["base"]
    r = httpx.post(f"{base}/reload-model", timeout=60)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{base}/reload-model", headers={"Authorization": f"Basic {ADMIN}"}, timeout=60)
    assert r.status_code == 401
    r = httpx.post(f"{base}/reload-model", headers={"Authorization": f"Bearer {WRONG}"})
    assert r.status_code == 403 and WRONG not in r.text
    r = httpx.post(f"{base}/reload-model", headers={"Authorization": f"Bearer {ADMIN}x"})
    assert r.status_code == 403
    r = httpx.post(f"{base}/reload-model", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    assert r.status_code == 200 and r.json()["status"] == "unchanged"


def test_oversized_bodies_get_413_before_parsing(server: dict) -> None:
    base = server["base"]
    cap = Settings.model_fields["max_body_bytes"].default  # serve runs with the defaults
    # not even JSON: parsed, it would be a 422; the cap answers first
    r = httpx.post(f"{base}/predict", content=b"{" * (cap + 1), timeout=30)
    assert r.status_code == 413 and str(cap) in r.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for _ in range(cap // 65536 + 2):
            yield b"[" * 65536

    r = httpx.post(f"{base}/predict", content=chunks(), timeout=30)  # chunked, no length
    assert r.status_code == 413
    # a claimed 1 TB body is refused from the headers alone, without reading (or waiting for) it
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000000\r\n\r\n{"
        )
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert httpx.post(f"{base}/predict", json=TICKET, timeout=30).status_code == 200


def test_requests_cannot_choose_the_model(registry: Settings) -> None:
    evil = "models:/evil/1"
    with TestClient(create_app(registry)) as client:
        spec = client.get("/openapi.json").json()["paths"]["/reload-model"]["post"]
        assert "requestBody" not in spec and not spec.get("parameters")
        auth = {"Authorization": f"Bearer {ADMIN}"}
        attempts = [
            client.post("/reload-model", headers=auth, json={"model_uri": evil, "uri": evil}),
            client.post(f"/reload-model?model_uri={evil}&uri={evil}&name=evil", headers=auth),
            client.post("/reload-model", headers={**auth, "X-Model-Uri": evil}),
            client.post("/predict", json={**TICKET, "model_uri": evil, "model": "evil"}),
            client.post(f"/predict?model_uri={evil}", json=TICKET),
        ]
        for r in attempts:
            assert r.status_code == 200, r.text
            assert r.json()["model_version"] == 1
            assert r.json().get("status", "unchanged") == "unchanged"
        info = client.get("/model").json()
        assert info["name"] == "ticket_urgency" and info["version"] == 1
        assert info["uri"] == registry.model_uri == "models:/ticket_urgency/Production"


def test_no_token_or_personal_data_in_logs(server: dict, registry: Settings) -> None:
    base = server["base"]
    for token in (ADMIN, WRONG):
        httpx.post(f"{base}/reload-model", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert httpx.post(f"{base}/predict", json=PII_TICKET, timeout=30).status_code == 200
    bad = {**PII_TICKET, "source": None}  # a 422 that echoes the input back to the caller
    assert httpx.post(f"{base}/predict", json=bad, timeout=30).status_code == 422
    batch = {"tickets": [PII_TICKET] * 3}
    assert httpx.post(f"{base}/predict/batch", json=batch, timeout=30).status_code == 200
    out = _stop(server)
    assert "POST /reload-model" in out and "POST /predict" in out  # access log was on
    for secret in (ADMIN, WRONG, *EMAILS, *PHONES):
        assert secret not in out, f"{secret!r} reached the server log"
    # the prediction log (served tickets become data) stores masked text
    stored = list(Path(registry.storage).rglob("predictions/**/*"))
    files = [p for p in stored if p.is_file()]
    assert files, stored
    text = "".join(p.read_bytes().decode("utf-8", "replace") for p in files)
    assert "[EMAIL]" in text and "[PHONE]" in text
    for secret in (*EMAILS, *PHONES, ADMIN):
        assert secret not in text, f"{secret!r} reached the prediction log"


def test_mlflow_input_example_is_masked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from ticket_urgency.training import train

    settings = make_settings(tmp_path, mlflow_registry_uri=None)
    ref, _ = generate_dataset(400, 10, seed=17)
    ref["title"] = ref["title"] + f" - contact {EMAILS[0]} / {PHONES[0]}"
    ref["description"] = f"Reach {EMAILS[1]} or {PHONES[1]}, {PHONES[2]}. " + ref["description"]
    path = tmp_path / "tickets.csv"
    ref.to_csv(path, index=False)
    with caplog.at_level(logging.INFO):
        result = train(settings, str(path), search_grid=None, compare_baseline=False)
    client = MlflowClient(settings.mlflow_tracking_uri)
    local = download_artifacts(
        artifact_uri=result.model_uri, tracking_uri=settings.mlflow_tracking_uri
    )
    examples = [p for p in Path(local).rglob("input_example.json")]
    assert examples, list(Path(local).rglob("*"))
    example = examples[0].read_text()
    assert json.loads(example) and ("<email>" in example or "[EMAIL]" in example)
    for secret in (*EMAILS, *PHONES):
        assert secret not in example, f"{secret!r} in the MLflow input example"
        assert secret not in caplog.text
    captured = capfd.readouterr()
    for secret in (*EMAILS, *PHONES):
        assert secret not in captured.out + captured.err
    assert client.get_run(result.run_id).info.status == "FINISHED"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_serving_needs_only_read_on_the_registry_and_writes_only_predictions(
    registry: Settings,
) -> None:
    from mlflow import MlflowClient

    root = Path(registry.storage).parent  # mlflow.db, artifacts/, store/
    db = Path(registry.mlflow_tracking_uri.removeprefix("sqlite:///"))
    read_only = f"sqlite:///file:{db}?mode=ro&uri=true"
    with pytest.raises(Exception, match="(?i)readonly|read-only"):  # the connection cannot write
        MlflowClient(read_only, read_only).create_registered_model("must-not-exist")
    before = _tree(root)
    settings = registry.model_copy(update={"mlflow_tracking_uri": read_only})
    with TestClient(create_app(settings)) as client:
        assert client.get("/ready").status_code == 200
        assert client.post("/predict", json=PII_TICKET).json()["model_version"] == 1
        auth = {"Authorization": f"Bearer {ADMIN}"}
        assert client.post("/reload-model", headers=auth).json()["status"] == "unchanged"
    after = _tree(root)
    changed = {k for k in before.keys() & after.keys() if before[k] != after[k]}
    created = after.keys() - before.keys()
    assert not changed - {k for k in changed if k.startswith("store/predictions/")}, changed
    assert created and all(k.startswith("store/predictions/") for k in created), created
