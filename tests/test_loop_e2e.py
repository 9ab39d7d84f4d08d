"""The closed loop, end to end, with real components.

serve (uvicorn subprocess via ``ticket-urgency serve``) -> a few hundred predictions -> the
prediction log is flushed -> ``ingest-predictions`` -> late labels via ``upload`` -> ``drift``
(estimated and realized performance) -> retrain on combined -> ``promote`` -> ``/reload-model``
-> the next prediction carries the new version. Storage and MLflow live in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import ID_COLUMN, LABEL_COLUMN, to_csv_bytes
from ticket_urgency.datasets import COMBINED_KEY, NEW_KEY, load_dataset, upload
from ticket_urgency.generate import generate_dataset
from ticket_urgency.prediction_log import read_prediction_log
from ticket_urgency.registry import promote
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import LocalStorage
from ticket_urgency.testing import free_port
from ticket_urgency.training import train

ADMIN = "loop-admin-token"
SMALL = {
    "char_ngram_max": 3,
    "char_max_features": 5000,
    "word_max_features": 5000,
    "calibration_cv": 2,
}
FEATURES = ["title", "description", "source", "customer_tier"]


def cli(*args: str) -> dict:
    """Run a ``ticket-urgency`` command in-process and return its JSON output."""
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (args, result.output)
    data: dict = json.loads(result.stdout)
    return data


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``ticket-urgency serve`` on a free port, on this test's storage and MLflow database."""
    port = free_port()
    env = {
        **os.environ,
        "TICKET_URGENCY_ADMIN_TOKEN": ADMIN,
        "TICKET_URGENCY_PREDICTION_LOG_FLUSH_SECONDS": "0.3",
        "OMP_NUM_THREADS": "1",
    }
    exe = Path(sys.executable).with_name("ticket-urgency")
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API did not become ready"
            time.sleep(0.3)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


@pytest.fixture
def first_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pd.DataFrame:
    """Reference uploaded, v1 trained on it and promoted; returns the tickets to serve."""
    monkeypatch.setenv("TICKET_URGENCY_DRIFT_MIN_ROWS", "100")
    get_settings.cache_clear()
    reference, new = generate_dataset(1500, 400, drift="topic", seed=3)
    upload(LocalStorage(tmp_path / "store"), reference, None)
    result = train(get_settings(), "reference", SMALL, search_grid=None, compare_baseline=False)
    assert result.version == "1"
    assert promote(get_settings(), version="1").promoted
    return new


def test_served_tickets_come_back_as_labelled_data_and_a_new_model(
    tmp_path: Path, first_model: pd.DataFrame, server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, proc = server
    new = first_model
    storage = LocalStorage(tmp_path / "store")
    auth = {"Authorization": f"Bearer {ADMIN}"}

    # 1. serve a few hundred tickets: 300 with ids (batches), 100 without (one by one)
    with httpx.Client(base_url=url, timeout=60) as http:
        with_ids = new.iloc[:300]
        for start in range(0, 300, 100):
            chunk = with_ids.iloc[start : start + 100]
            body = {"tickets": chunk[[ID_COLUMN, *FEATURES]].to_dict("records")}
            reply = http.post("/predict/batch", json=body)
            assert reply.status_code == 200, reply.text
            assert reply.json()["model_version"] == 1
        for row in new.iloc[300:400][FEATURES].to_dict("records"):
            one = http.post("/predict", json=row)
            assert one.status_code == 200 and one.json()["model_version"] == 1

    # 2. the log is flushed off the request path within a flush interval
    deadline = time.monotonic() + 30
    while len(read_prediction_log(storage)) < 400:
        assert time.monotonic() < deadline, "the prediction log was not flushed"
        time.sleep(0.3)

    # 3. ingest: unlabelled rows keyed by the request's id or a derived one; twice = no-op
    first = cli("ingest-predictions")
    assert (first["predictions"], first["added"], first["dropped"]) == (400, 400, 0)
    assert first["combined_rows"] == 1500
    assert cli("ingest-predictions")["unchanged"] == 400
    stored = load_dataset(storage, NEW_KEY)
    assert set(new[ID_COLUMN].iloc[:300]) <= set(stored[ID_COLUMN])
    assert (stored[LABEL_COLUMN] == "").all() and set(stored["model_version"]) == {"1"}

    # 4. late labels for 250 served tickets arrive through upload
    late = tmp_path / "late_labels.csv"
    late.write_bytes(to_csv_bytes(new.iloc[:250][[ID_COLUMN, *FEATURES, LABEL_COLUMN]]))
    report = cli("upload", "--new", str(late))
    assert (report["added"], report["replaced"], report["combined_rows"]) == (0, 250, 1750)
    assert len(load_dataset(storage, COMBINED_KEY)) == 1750

    # 5. drift: CBPE-estimated and realized performance side by side
    drift = cli("drift")
    model = drift["model"]
    assert model["status"] == "ok" and str(model["version"]) == "1"
    assert 0.0 <= model["estimated_performance"]["f1_macro"] <= 1.0
    assert model["realized_performance"]["rows"] == 250
    assert 0.0 <= model["realized_performance"]["f1_macro"] <= 1.0

    # 6. retrain on combined, promote, reload
    retrained = train(get_settings(), "combined", SMALL, search_grid=None, compare_baseline=False)
    assert retrained.version == "2"
    decision = cli("promote", "--version", "2", "--force")
    assert decision["decision"] in ("promoted", "forced")
    with httpx.Client(base_url=url, timeout=120) as http:
        assert http.post("/reload-model").status_code in (401, 403)
        reload = http.post("/reload-model", headers=auth)
        assert reload.status_code == 200, reload.text
        assert (reload.json()["previous_version"], reload.json()["model_version"]) == (1, 2)

        # 7. the next prediction carries the new version, and /model tells the same story
        after = http.post("/predict", json=new.iloc[0][[ID_COLUMN, *FEATURES]].to_dict())
        assert after.json()["model_version"] == 2
        info = http.get("/model").json()
        assert info["version"] == 2 and info["run_id"] == retrained.run_id

    # the new version's prediction is logged too, and becomes new data on the next ingest
    proc.send_signal(signal.SIGTERM)  # graceful shutdown flushes the log
    assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    last = cli("ingest-predictions")
    assert last["model_versions"].get("2") == 1 and last["replaced"] == 1
    assert (
        load_dataset(storage, NEW_KEY)
        .set_index(ID_COLUMN)
        .loc[new[ID_COLUMN].iloc[0], LABEL_COLUMN]
        == new[LABEL_COLUMN].iloc[0]
    )  # re-serving a labelled ticket keeps its label
