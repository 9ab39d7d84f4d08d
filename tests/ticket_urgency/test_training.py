"""Training: one real `ticket-urgency train --json` run on small stored data, then checks of
everything it logged and registered; plus the split, data loading and run-context rules."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import LABEL_COLUMN, to_csv_bytes
from ticket_urgency.datasets import SNAPSHOT_PREFIX, upload
from ticket_urgency.errors import UserFacingError
from ticket_urgency.generate import generate_dataset
from ticket_urgency.mlflow_utils import get_or_create_experiment, training_run
from ticket_urgency.settings import Settings, get_settings
from ticket_urgency.storage import LocalStorage
from ticket_urgency.training import load_training_data, mask_example, split_newest

runner = CliRunner()


@dataclass
class Trained:
    root: Path
    env: dict[str, str]
    output: dict[str, object]
    reference: pd.DataFrame


def _point_env(mp: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        mp.setenv(key, value)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """Generate + upload 500 reference and 150 new tickets, then run `train --json` once."""
    root = tmp_path_factory.mktemp("train")
    env = {
        "TICKET_URGENCY_STORAGE": str(root / "store"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    reference, new = generate_dataset(500, 150, seed=5)
    with pytest.MonkeyPatch.context() as mp:
        _point_env(mp, env)
        upload(LocalStorage(root / "store"), reference, new)
        result = runner.invoke(app, ["train", "--json"])
        assert result.exit_code == 0, result.output
        output = json.loads(result.stdout.strip().splitlines()[-1])
    get_settings.cache_clear()
    yield Trained(root, env, output, reference)


@pytest.fixture
def trained_env(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> Settings:
    _point_env(monkeypatch, trained.env)
    return get_settings()


def test_train_json_prints_run_version_and_metrics(trained: Trained) -> None:
    out = trained.output
    assert set(out) == {"run_id", "version", "metrics"}
    assert out["version"] == "1"
    metrics = out["metrics"]
    assert isinstance(metrics, dict)
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    # Far better than chance on four classes, and compared against the original design.
    assert metrics["macro_f1"] > 0.5
    assert "baseline_macro_f1" in metrics


def test_train_logs_params_metrics_plots_datasets_and_model(
    trained: Trained, trained_env: Settings
) -> None:
    client = MlflowClient(trained_env.mlflow_tracking_uri)
    run = client.get_run(str(trained.output["run_id"]))
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "ticket_urgency"
    assert exp.artifact_location == (trained.root / "store" / "mlflow").as_uri()
    params, metrics = run.data.params, run.data.metrics
    for key in ("C", "classifier", "max_chars", "data_digest", "split", "serialization"):
        assert key in params
    assert params["split"] == "time"
    labels = {"low", "medium", "high", "critical"}
    for label in labels:
        assert f"precision_{label}" in metrics and f"recall_{label}" in metrics
    for key in ("macro_f1", "accuracy", "brier", "ece", "log_loss", "baseline_macro_f1"):
        assert key in metrics
    assert 0.0 <= metrics["ece"] <= 1.0
    search = client.get_metric_history(run.info.run_id, "search_val_macro_f1")
    assert len(search) >= 2

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/calibration.png"} <= artifacts
    preds_path = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="evaluation/test_predictions.csv",
        tracking_uri=trained_env.mlflow_tracking_uri,
    )
    preds = pd.read_csv(preds_path)
    assert {"ticket_id", "label_urgency", "prediction"} <= set(preds.columns)
    assert len(preds) == int(metrics["n_test"])

    inputs = run.inputs.dataset_inputs
    contexts = {
        next(t.value for t in i.tags if t.key == "mlflow.data.context"): i.dataset for i in inputs
    }
    assert set(contexts) == {"training", "testing"}
    digest = params["data_digest"]
    snapshot = trained.root / "store" / SNAPSHOT_PREFIX / f"{digest}.csv"
    assert snapshot.is_file()
    for ds in contexts.values():
        assert json.loads(ds.source)["uri"] == str(snapshot)
        assert ds.digest.startswith(digest[:12])
    assert int(metrics["n_train"]) + int(metrics["n_test"]) == len(pd.read_csv(snapshot))


def test_registered_version_has_signature_example_and_predicts_raw_columns(
    trained: Trained, trained_env: Settings
) -> None:
    client = MlflowClient(trained_env.mlflow_tracking_uri)
    mv = client.get_model_version("ticket_urgency", "1")
    assert mv.run_id == trained.output["run_id"]
    assert mv.tags["data_digest"] and mv.tags["macro_f1"]
    mlflow.set_tracking_uri(trained_env.mlflow_tracking_uri)
    info = mlflow.models.get_model_info("models:/ticket_urgency/1")
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs.inputs][:4] == [
        "title",
        "description",
        "source",
        "customer_tier",
    ]
    assert "sklearn" in info.flavors
    assert info.flavors["sklearn"]["serialization_format"] == "cloudpickle"
    pyfunc = mlflow.pyfunc.load_model("models:/ticket_urgency/1")
    raw = trained.reference[["title", "description", "source", "customer_tier"]].head(8)
    pred = pyfunc.predict(raw)
    assert set(pred) <= {"low", "medium", "high", "critical"} and len(pred) == 8
    sk = mlflow.sklearn.load_model("models:/ticket_urgency/1")
    assert sk.predict_proba(raw).shape == (8, 4)


def test_logged_model_loads_without_the_ticket_urgency_package(
    trained: Trained, trained_env: Settings
) -> None:
    """The cloudpickle artifact carries our transformer by value: sklearn alone can run it."""
    local = mlflow.artifacts.download_artifacts(
        "models:/ticket_urgency/1", tracking_uri=trained_env.mlflow_tracking_uri
    )
    script = (
        "import sys, cloudpickle, pandas as pd\n"
        "sys.modules['ticket_urgency'] = None  # any import of the package fails\n"
        f"model = cloudpickle.load(open({str(Path(local) / 'model.pkl')!r}, 'rb'))\n"
        "row = pd.DataFrame([{'title': 'Site down', 'description': 'all users see 500',"
        " 'source': 'phone', 'customer_tier': 'Gold'}])\n"
        "print(model.predict(row)[0])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() in {"low", "medium", "high", "critical"}


def test_input_example_masks_emails_and_phone_numbers() -> None:
    df = pd.DataFrame(
        {
            "title": ["call me at +1 (555) 123-4567"],
            "description": ["mail jane.doe@corp.example or 0049 30 1234567"],
            "source": ["email"],
            "customer_tier": ["Gold"],
        }
    )
    masked = mask_example(df)
    text = " ".join(masked.iloc[0])
    assert "555" not in text and "jane.doe" not in text and "1234567" not in text
    assert "<phone>" in text and "<email>" in text
    assert df.iloc[0]["title"].startswith("call me at +1")  # input untouched


def test_split_is_time_aware_when_created_at_is_present() -> None:
    df = pd.DataFrame(
        {
            "created_at": [f"2024-01-{d:02d}T00:00:00Z" for d in (5, 1, 9, 3, 7, 2, 8, 4, 6, 10)],
            LABEL_COLUMN: ["a", "b"] * 5,
        }
    )
    older, newest = split_newest(df, 0.3)
    assert sorted(newest["created_at"]) == [
        "2024-01-08T00:00:00Z",
        "2024-01-09T00:00:00Z",
        "2024-01-10T00:00:00Z",
    ]
    assert max(older["created_at"]) < min(newest["created_at"])
    no_time = df.drop(columns="created_at")
    older, newest = split_newest(no_time, 0.4)
    assert len(newest) == 4 and set(newest[LABEL_COLUMN]) == {"a", "b"}  # stratified


def test_train_without_data_is_a_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "run `ticket-urgency upload" in errors[0]
    assert "Traceback" not in result.stderr


def test_load_training_data_from_a_path_and_its_errors(tmp_path: Path) -> None:
    reference, _ = generate_dataset(60, 0, seed=2)
    path = tmp_path / "t.csv"
    path.write_bytes(to_csv_bytes(reference))
    td = load_training_data(get_settings(), str(path))
    assert td.kind == "file" and len(td.frame) == 60
    one_label = reference.assign(label_urgency="low")
    path.write_bytes(to_csv_bytes(one_label))
    with pytest.raises(UserFacingError, match="single label"):
        load_training_data(get_settings(), str(path))
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_training_run_joins_the_run_mlflow_run_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside `mlflow run` (MLFLOW_RUN_ID set) logging goes to that run, in its experiment."""
    settings = get_settings()
    client = MlflowClient(settings.mlflow_tracking_uri)
    other = client.create_experiment("launched-by-mlflow-run")
    outer = client.create_run(other)
    monkeypatch.setenv("MLFLOW_RUN_ID", outer.info.run_id)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", other)
    get_settings.cache_clear()
    with training_run(get_settings()) as run:
        mlflow.log_param("probe", "1")
    assert run.info.run_id == outer.info.run_id
    assert client.get_run(outer.info.run_id).data.params["probe"] == "1"
    # Without MLFLOW_RUN_ID a fresh run opens in the project's experiment.
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    get_settings.cache_clear()
    with training_run(get_settings()) as run:
        pass
    assert run.info.experiment_id == get_or_create_experiment(get_settings())
    assert run.info.run_id != outer.info.run_id
