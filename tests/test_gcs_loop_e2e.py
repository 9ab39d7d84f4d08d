"""The whole loop on Google Cloud Storage, through the CLI, against the GCS emulator.

generate → upload → drift --json → train --json → promote --json → serve (a real
``ticket-urgency serve`` subprocess) → reload → predict, with ``TICKET_URGENCY_STORAGE=gs://bucket``
and MLflow's artifacts in ``gs://bucket/mlflow``. Only the MLflow database (SQLite) is local.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.datasets import COMBINED_KEY, NEW_KEY, REFERENCE_KEY, SNAPSHOT_PREFIX
from ticket_urgency.mlflow_utils import client as mlflow_client
from ticket_urgency.settings import Settings, get_settings
from ticket_urgency.storage import GCSStorage
from ticket_urgency.testing import free_port

pytestmark = pytest.mark.gcs

ADMIN = "e2e-admin-token"
TICKET = {
    "title": "Production database down for all users",
    "description": "Checkout fails with HTTP 500 since the last deploy; revenue impact.",
    "source": "email",
    "customer_tier": "Enterprise",
}


def cli(*args: str) -> str:
    """Run one CLI command in-process; return stdout (fails the test on a non-zero exit)."""
    get_settings.cache_clear()
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}"
    return result.stdout


def cli_json(*args: str) -> dict[str, Any]:
    """Run a ``--json`` command and parse its one JSON object."""
    out = cli(*args, "--json").strip().splitlines()
    parsed: dict[str, Any] = json.loads(out[-1])
    return parsed


@pytest.fixture
def server_env(gcs_settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The environment of the serve subprocess: the bucket, the emulator, the registry."""
    env = dict(os.environ)
    env.update(
        {
            "TICKET_URGENCY_ADMIN_TOKEN": ADMIN,
            "TICKET_URGENCY_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    assert env["TICKET_URGENCY_STORAGE"] == gcs_settings.storage
    assert env["STORAGE_EMULATOR_HOST"]
    return env


@pytest.fixture
def start_server(
    server_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[[], tuple[str, Path]]]:
    """Start ``ticket-urgency serve`` as a subprocess (on demand); always stop it."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[str, Path]:
        port = free_port()
        log_path = tmp_path / "serve.log"
        exe = Path(sys.executable).with_name("ticket-urgency")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=server_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc, log_path)
        return base, log_path

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Block until ``GET /ready`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"serve not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def test_full_loop_on_gcs(
    gcs_settings: Settings,
    gcs_storage: GCSStorage,
    start_server: Callable[[], tuple[str, Path]],
    tmp_path: Path,
) -> None:
    bucket = gcs_settings.storage.removeprefix("gs://")
    files = tmp_path / "files"

    # generate → upload
    cli("generate", "--out", str(files), "--rows", "1500", "--new-rows", "600", "--drift", "topic")
    upload = cli_json(
        "upload", "--reference", str(files / "tickets.csv"), "--new", str(files / "new_tickets.csv")
    )
    for key in (REFERENCE_KEY, NEW_KEY, COMBINED_KEY):
        assert gcs_storage.exists(key), key
    assert str(upload["combined_uri"]).startswith(f"gs://{bucket}/")

    # drift --json: the report pair lands in the bucket
    drift = cli_json("drift")
    assert isinstance(drift["drift_detected"], bool)
    assert drift["features"]
    assert str(drift["report_uri"]).startswith(f"gs://{bucket}/monitoring/drift_report_")
    reports = gcs_storage.list("monitoring/")
    assert any(k.endswith(".json") for k in reports), reports
    assert any(k.endswith(".html") for k in reports), reports

    # train --json: the model's artifacts go to gs://bucket/mlflow
    trained = cli_json("train")
    assert trained["version"] == "1"
    assert trained["metrics"]["macro_f1"] > 0.3
    run = mlflow_client(get_settings()).get_run(trained["run_id"])
    assert run.info.artifact_uri.startswith(f"gs://{bucket}/mlflow/")
    mlmodels = [k for k in gcs_storage.list("mlflow/") if k.endswith("/MLmodel")]
    assert mlmodels, gcs_storage.list("mlflow/")
    assert gcs_storage.list(f"{SNAPSHOT_PREFIX}/")

    # promote --json
    decision = cli_json("promote")
    assert decision["promoted"] is True
    assert decision["production_version"] == "1"

    # serve: a real uvicorn process with the same variables loads v1 from gs://bucket/mlflow
    base, log_path = start_server()
    health = httpx.get(f"{base}/health", timeout=10).json()
    assert health["model_loaded"] is True
    assert str(health["model_version"]) == "1"
    first = httpx.post(f"{base}/predict", json=TICKET, timeout=30)
    assert first.status_code == 200, first.text
    assert str(first.json()["model_version"]) == "1"

    # reload: a second version (same logged model, registered again) is promoted via the CLI,
    # then /reload-model swaps it in without a restart
    c = mlflow_client(get_settings())
    v1 = c.get_model_version(gcs_settings.model_name, "1")
    assert v1.source
    c.create_model_version(gcs_settings.model_name, v1.source, run_id=v1.run_id)
    forced = cli_json("promote", "--version", "2", "--force")
    assert forced["production_version"] == "2"
    denied = httpx.post(f"{base}/reload-model", timeout=60)
    assert denied.status_code in (401, 403)
    reload = httpx.post(
        f"{base}/reload-model", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120
    )
    assert reload.status_code == 200, reload.text
    body = reload.json()
    assert str(body["previous_version"]) == "1"
    assert str(body["model_version"]) == "2"
    assert body["model_loaded"] is True

    # predict: single and batch requests are answered by v2
    pred = httpx.post(f"{base}/predict", json=TICKET, timeout=30)
    assert pred.status_code == 200, pred.text
    out = pred.json()
    assert str(out["model_version"]) == "2"
    assert out["prediction"] in out["probabilities"]
    assert set(out["probabilities"]) == set(json.loads(run.data.tags["labels"]))
    batch = httpx.post(f"{base}/predict/batch", json={"tickets": [TICKET] * 3}, timeout=30)
    assert batch.status_code == 200, batch.text
    assert len(batch.json()["predictions"]) == 3

    # every served prediction reaches predictions/<date>/ in the bucket (batched, async)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        keys = [k for k in gcs_storage.list("predictions/") if k.endswith(".jsonl")]
        lines = [
            json.loads(line)
            for k in keys
            for line in gcs_storage.read_bytes(k).decode().splitlines()
            if line
        ]
        if len(lines) >= 5:
            break
        time.sleep(0.5)
    assert len(lines) == 5, f"{len(lines)} logged predictions\n{log_path.read_text()[-3000:]}"
    assert all(k.startswith(f"predictions/{today}/") for k in keys), keys
    assert sorted(str(r["model_version"]) for r in lines) == ["1", "2", "2", "2", "2"]

    # batch predict through the CLI: the Production model (v2) straight from gs://bucket/mlflow
    scored_path = tmp_path / "scored.csv"
    cli("predict", "--in", str(files / "new_tickets.csv"), "--out", str(scored_path))
    scored = pd.read_csv(scored_path, dtype=str, keep_default_na=False)
    assert len(scored) == 600
    assert set(scored["model_version"]) == {"2"}
    assert set(scored["prediction"]) <= set(out["probabilities"])
