"""Drift monitoring end to end: stored reports, MLflow run, CLI, model-aware part, edge cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.compose import make_column_transformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import to_csv_bytes
from ticket_urgency.datasets import NEW_KEY, snapshot, upload
from ticket_urgency.drift import (
    DriftConfig,
    NoNewDataError,
    compute_drift,
    latest_report,
    run_drift,
)
from ticket_urgency.generate import generate_dataset
from ticket_urgency.settings import Settings, get_settings
from ticket_urgency.storage import LocalStorage

runner = CliRunner()


def _store(storage: LocalStorage, reference: pd.DataFrame, new: pd.DataFrame | None) -> None:
    if new is not None and "label_urgency" not in new:
        new = new.assign(label_urgency="")
    upload(storage, reference, new)


def _register_model(settings: Settings, storage: LocalStorage, reference: pd.DataFrame) -> None:
    """Train a tiny pipeline on the older 80%, log it like training does, put it in Production."""
    n_train = int(len(reference) * 0.8)
    train_df, test_df = reference.iloc[:n_train], reference.iloc[n_train:]
    pipe = make_pipeline(
        make_column_transformer(
            (TfidfVectorizer(max_features=2000), "title"),
            (TfidfVectorizer(max_features=2000), "description"),
            (OneHotEncoder(handle_unknown="ignore"), ["source", "customer_tier"]),
        ),
        LogisticRegression(max_iter=300),
    )
    pipe.fit(train_df, train_df["label_urgency"])
    _, snapshot_uri = snapshot(storage, reference)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    with mlflow.start_run() as run:
        mlflow.log_text(
            test_df[["ticket_id", "label_urgency"]].to_csv(index=False),
            "evaluation/test_predictions.csv",
        )
        mlflow.sklearn.log_model(
            pipe,
            name="model",
            registered_model_name=settings.model_name,
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],  # skip slow requirement inference
        )
    client = MlflowClient(settings.mlflow_tracking_uri)
    client.set_model_version_tag(settings.model_name, "1", "data_snapshot_uri", snapshot_uri)
    client.set_model_version_tag(settings.model_name, "1", "run_id", run.info.run_id)
    client.transition_model_version_stage(settings.model_name, "1", "Production")


def test_run_drift_stores_reports_logs_mlflow_and_monitors_the_model(
    local_storage: LocalStorage,
) -> None:
    settings = get_settings()
    reference, new = generate_dataset(2500, 1000, drift="tier", seed=7)
    _store(local_storage, reference, new)
    _register_model(settings, local_storage, reference)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    messages: list[str] = []

    report = run_drift(settings, local_storage, now=now, progress=messages.append)

    assert report.drift_detected and report.status == "drift"
    assert "customer_tier" in report.alerted_features and "source" not in report.alerted_features
    keys = local_storage.list("monitoring")
    assert keys == [
        "monitoring/drift_report_20260102T030405000000Z.html",
        "monitoring/drift_report_20260102T030405000000Z.json",
    ]
    stored = json.loads(local_storage.read_bytes(keys[1]))
    assert stored == latest_report(local_storage)
    assert stored["drift_detected"] is True
    assert {"source", "customer_tier", "text_topic", "urgent_share"} <= set(stored["features"])
    tier = stored["features"]["customer_tier"]
    for field in ("method", "statistic", "p_value", "effect_size", "threshold", "alert"):
        assert field in tier
    assert set(tier["reference_distribution"]) == set(reference["customer_tier"])
    assert tier["chunks"] and all("value" in c for c in tier["chunks"])
    assert stored["chunking"]["ticket_columns"]["by"] == "period"
    assert stored["multivariate"]["chunks_total"] >= 1
    html = local_storage.read_bytes(keys[0]).decode()
    assert "plotly" in html and "customer_tier" in html
    assert messages, "long steps report progress"

    model = stored["model"]
    assert model["status"] == "ok" and model["version"] == "1" and stored["model_version"] == "1"
    assert model["held_out"].startswith("the training run's test split (500 rows")
    assert model["sample_rows"] == {"reference_held_out": 500, "new": 1000}
    est = model["estimated_performance"]
    realized = model["realized_performance"]
    assert 0.3 < est["f1_macro"] <= 1.0 and est["chunks"]
    assert realized["rows"] == 1000
    # CBPE fitted on held-out predictions tracks the realized macro-F1.
    assert abs(est["f1_macro"] - realized["f1_macro"]) < 0.08
    assert set(model["prediction_drift"]["new_distribution"]) <= set(model["classes"])

    run = MlflowClient(settings.mlflow_tracking_uri).get_run(stored["mlflow_run_id"])
    assert run.info.run_name == "drift-monitoring" and run.data.tags["type"] == "monitoring"
    exp = MlflowClient(settings.mlflow_tracking_uri).get_experiment(run.info.experiment_id)
    assert exp.name == settings.experiment_name
    artifacts = {
        a.path
        for a in MlflowClient(settings.mlflow_tracking_uri).list_artifacts(
            run.info.run_id, "monitoring"
        )
    }
    assert artifacts == {f"monitoring/{Path(k).name}" for k in keys}
    assert run.data.metrics["drift_detected"] == 1.0


def test_cli_same_distribution_without_created_at_reports_no_drift(tmp_path: Path) -> None:
    reference, new = generate_dataset(1200, 600, seed=3)
    ref_path, new_path = tmp_path / "ref.csv", tmp_path / "new.csv"
    ref_path.write_bytes(to_csv_bytes(reference.drop(columns=["created_at", "ticket_id"])))
    new_path.write_bytes(to_csv_bytes(new.drop(columns=["created_at", "ticket_id"])))
    up = runner.invoke(app, ["upload", "--reference", str(ref_path), "--new", str(new_path)])
    assert up.exit_code == 0, up.output

    result = runner.invoke(app, ["drift", "--json", "--fail-on-drift"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["drift_detected"] is False and report["status"] == "no_drift"
    assert report["chunking"]["ticket_columns"]["by"] == "size"
    assert report["chunking"]["created_at_used"] is False
    assert report["model"]["status"] == "skipped"
    assert Path(report["html_uri"]).is_file() and Path(report["report_uri"]).is_file()


def test_cli_fail_on_drift_exits_3_and_summary_names_features(local_storage: LocalStorage) -> None:
    reference, new = generate_dataset(1200, 600, drift="source", seed=11)
    _store(local_storage, reference, new)
    result = runner.invoke(app, ["drift", "--fail-on-drift"])
    assert result.exit_code == 3, result.output
    assert "DRIFT DETECTED" in result.stdout and "source" in result.stdout


def test_missing_or_empty_new_data_exits_2_and_keeps_earlier_report(
    local_storage: LocalStorage,
) -> None:
    reference, _ = generate_dataset(600, 0, seed=2)
    _store(local_storage, reference, None)
    result = runner.invoke(app, ["drift"])
    assert result.exit_code == 2
    assert "no new data" in result.stderr and "Traceback" not in result.output
    assert local_storage.list("monitoring") == []

    local_storage.write_bytes("monitoring/drift_report_20250101T000000000000Z.json", b"{}")
    header = "ticket_id,title,description,source,customer_tier,label_urgency\n"
    local_storage.write_bytes(NEW_KEY, header.encode())
    result = runner.invoke(app, ["drift", "--json"])
    assert result.exit_code == 2
    assert "new data" in result.stderr and result.stdout == ""
    assert local_storage.list("monitoring") == [
        "monitoring/drift_report_20250101T000000000000Z.json"
    ]
    local_storage.write_bytes(NEW_KEY, b"")
    with pytest.raises(NoNewDataError):
        run_drift(get_settings(), local_storage)


def test_insufficient_data_gives_no_verdict() -> None:
    reference, new = generate_dataset(1000, 200, drift="all", seed=5)
    report = compute_drift(reference, new, DriftConfig(nannyml=False, min_rows=500))
    assert report.status == "insufficient_data" and report.drift_detected is False
    assert "insufficient data" in report.message and "200 new" in report.message
    assert report.alerted_features == []
    # The effect is still measured and shown.
    assert report.features["source"]["effect_size"] > 0.15


def test_unseen_generator_vocabulary_and_categories() -> None:
    """Nothing depends on our generator: other labels, sources, tiers and words work."""
    reference, new = generate_dataset(1200, 600, seed=9)
    swap = {"email": "Mail", "web": "Portal", "chat": "Slack", "phone": "Hotline", "api": "REST"}
    other_ref = reference.assign(
        source=reference["source"].map(swap),
        customer_tier=reference["customer_tier"].str.upper(),
        label_urgency=reference["label_urgency"].map(
            {"low": "normal", "medium": "normal", "high": "urgent", "critical": "urgent"}
        ),
        title=reference["title"].str.swapcase(),
    ).drop(columns=["created_at"])
    other_new = new.assign(
        source=new["source"].map(swap).where(new.index % 3 != 0, "Teams"),
        customer_tier=new["customer_tier"].str.upper(),
        title=new["title"].str.swapcase(),
    ).drop(columns=["created_at", "label_urgency"])
    report = compute_drift(other_ref, other_new, DriftConfig(nannyml=False))
    assert report.alerted_features == ["source"]
    assert report.features["source"]["unseen_categories"] == ["Teams"]
    assert report.features["customer_tier"]["alert"] is False
