"""`mlflow run . -e train --env-manager local --experiment-name ticket_urgency` works here and
logs into the run MLflow started (no second run, no "active experiment ID does not match")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from ticket_urgency.datasets import upload
from ticket_urgency.generate import generate_dataset
from ticket_urgency.mlflow_utils import get_or_create_experiment
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import LocalStorage

REPO = Path(__file__).resolve().parents[2]


def test_mlproject_declares_typed_entry_points() -> None:
    spec = yaml.safe_load((REPO / "MLproject").read_text())
    assert spec["conda_env"] == "conda.yaml" and (REPO / "conda.yaml").is_file()
    points = spec["entry_points"]
    assert {"main", "train", "promote", "drift", "generate"} <= set(points)
    for name, point in points.items():
        assert "python -m ticket_urgency.cli" in point["command"], name
        for param, decl in point.get("parameters", {}).items():
            assert decl["type"] in {"string", "float", "path", "uri"}, (name, param)


@pytest.mark.slow
def test_mlflow_run_train_entry_point_logs_into_its_run(tmp_path: Path) -> None:
    settings = get_settings()  # storage and MLflow DB in tmp_path (tests/conftest.py)
    reference, new = generate_dataset(300, 60, seed=4)
    upload(LocalStorage(settings.storage), reference, new)
    # Create the experiment first so its artifacts go to <storage>/mlflow, not ./mlruns.
    experiment_id = get_or_create_experiment(settings)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "TICKET_URGENCY_STORAGE": settings.storage,
    }
    cmd = [
        str(Path(sys.executable).with_name("mlflow")),
        "run",
        str(REPO),
        "-e",
        "train",
        "--env-manager",
        "local",
        "--experiment-name",
        "ticket_urgency",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "active experiment ID does not match" not in proc.stderr

    client = MlflowClient(settings.mlflow_tracking_uri)
    runs = client.search_runs([experiment_id])
    assert len(runs) == 1  # the run `mlflow run` opened, nothing else
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags.get("mlflow.project.entryPoint") == "train"
    assert "macro_f1" in run.data.metrics and "data_digest" in run.data.params
    versions = client.search_model_versions("name = 'ticket_urgency'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", run.info.run_id)]
