"""Batch scoring with a registered model: library and `predict` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ticket_urgency.batch import OUTPUT_COLUMNS, load_batch_model, predict_file, score_frame
from ticket_urgency.cli import app
from ticket_urgency.contract import FEATURE_COLUMNS, to_csv_bytes
from ticket_urgency.errors import UserFacingError
from ticket_urgency.generate import generate_dataset
from ticket_urgency.model import build_pipeline
from ticket_urgency.predictor import rows_to_columns
from ticket_urgency.settings import Settings

SMALL = {"char_ngram_max": 3, "char_max_features": 5000, "word_max_features": 5000}


def register_production(settings: Settings, reference: pd.DataFrame) -> str:
    """Fit the project's pipeline (small) and register it as Production with plain MLflow.

    (The full ``train`` + ``promote`` path runs in tests/test_loop_e2e.py.)
    """
    import mlflow
    import mlflow.sklearn

    pipe = build_pipeline(SMALL).fit(reference[list(FEATURE_COLUMNS)], reference["label_urgency"])
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment("batch-tests")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            pipe,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
            registered_model_name=settings.model_name,
        )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    client.transition_model_version_stage(settings.model_name, version, "Production")
    client.set_registered_model_alias(settings.model_name, "production", version)
    return version


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, pd.DataFrame]]:
    """A Production v1 in a tmp registry, and 700 unlabelled tickets to score."""
    tmp = tmp_path_factory.mktemp("batch")
    settings = Settings(
        storage=str(tmp / "store"),
        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        review_threshold=0.7,
    )
    reference, new = generate_dataset(800, 700, seed=5)
    assert register_production(settings, reference) == "1"
    yield settings, new.drop(columns=["label_urgency"])


def test_predict_file_writes_input_columns_plus_the_answer(
    registry: tuple[Settings, pd.DataFrame], tmp_path: Path
) -> None:
    settings, tickets = registry
    src = tmp_path / "in.csv"
    src.write_bytes(to_csv_bytes(tickets))
    seen: list[tuple[int, int]] = []
    result = predict_file(
        settings,
        src,
        tmp_path / "out" / "scored.csv",
        chunk_rows=300,
        progress=lambda n, total: seen.append((n, total)),
    )
    assert seen == [(300, 700), (300, 700), (100, 700)]
    out = pd.read_csv(tmp_path / "out" / "scored.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == list(tickets.columns) + list(OUTPUT_COLUMNS)
    assert out["ticket_id"].tolist() == tickets["ticket_id"].tolist()
    assert (result.rows, result.model_version, result.model_uri) == (
        700,
        "1",
        "models:/ticket_urgency/Production",
    )
    assert set(out["model_version"]) == {"1"}

    # the same answers as the model itself, with serving's review rule
    model = load_batch_model(settings)
    proba = model.pipeline_proba(rows_to_columns(tickets[list(FEATURE_COLUMNS)].to_dict("records")))
    assert out["prediction"].tolist() == model.labels(proba)
    conf = out["confidence"].astype(float).to_numpy()
    assert np.allclose(conf, proba.max(axis=1), atol=1e-6)
    assert out["needs_review"].tolist() == [str(c < 0.7) for c in proba.max(axis=1)]
    assert result.needs_review == int((proba.max(axis=1) < 0.7).sum())
    assert sum(result.predictions.values()) == 700
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_score_frame_keeps_extra_columns_and_overwrites_old_answers(
    registry: tuple[Settings, pd.DataFrame],
) -> None:
    settings, tickets = registry
    model = load_batch_model(settings, "models:/ticket_urgency/1")
    frame = tickets.head(5).assign(prediction="stale", note="kept")
    scored = score_frame(model, frame, review_threshold=1.0)
    assert scored["note"].tolist() == ["kept"] * 5
    assert "stale" not in set(scored["prediction"])
    assert scored["needs_review"].all()  # nothing is certain at threshold 1.0


def test_unknown_model_and_bad_files_are_user_errors(
    registry: tuple[Settings, pd.DataFrame], tmp_path: Path
) -> None:
    settings, tickets = registry
    with pytest.raises(UserFacingError, match="resolves to no registered model"):
        load_batch_model(settings, "models:/ticket_urgency/99")
    with pytest.raises(UserFacingError, match="is not models:/"):
        load_batch_model(settings, "runs:/abc/model")
    bad = tmp_path / "bad.csv"
    bad.write_text("title,description\nx,y\n")
    out = tmp_path / "never.csv"
    with pytest.raises(ValueError, match="missing required columns 'source', 'customer_tier'"):
        predict_file(settings, bad, out)
    assert not out.exists()


def test_cli_predict(
    registry: tuple[Settings, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticket_urgency.settings import get_settings

    settings, tickets = registry
    monkeypatch.setenv("TICKET_URGENCY_STORAGE", settings.storage)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    get_settings.cache_clear()
    src = tmp_path / "in.csv"
    src.write_bytes(to_csv_bytes(tickets.head(50).drop(columns=["ticket_id"])))
    runner = CliRunner()
    res = runner.invoke(
        app, ["predict", "--in", str(src), "--out", str(tmp_path / "o.csv"), "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["rows"] == 50 and report["model_version"] == "1"
    header = (tmp_path / "o.csv").read_text().splitlines()[0].split(",")
    assert "ticket_id" not in header  # derived ids are not input columns
    assert header[-4:] == list(OUTPUT_COLUMNS)

    monkeypatch.setattr("ticket_urgency.cli.loop.PROGRESS_MIN_ROWS", 10)
    text = runner.invoke(
        app,
        [
            "predict",
            "--in",
            str(src),
            "--out",
            str(tmp_path / "p.csv"),
            "--model-uri",
            "models:/ticket_urgency@production",
        ],
    )
    assert text.exit_code == 0, text.output
    assert "Scored 50 tickets" in text.stdout and "v1" in text.stdout
    assert "scoring" in text.stderr  # the progress bar goes to stderr

    missing = runner.invoke(app, ["predict", "--in", str(tmp_path / "nope.csv"), "--out", "x.csv"])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.output
    none = runner.invoke(
        app,
        [
            "predict",
            "--in",
            str(src),
            "--out",
            str(tmp_path / "q.csv"),
            "--model-uri",
            "models:/ticket_urgency/Staging",
        ],
    )
    assert none.exit_code == 2 and "train and promote a model first" in none.stderr


def test_predict_file_reads_and_writes_gcs_objects(
    registry: tuple[Settings, pd.DataFrame], gcs_settings: Settings, tmp_path: Path
) -> None:
    from ticket_urgency.storage import open_storage

    local, tickets = registry
    settings = Settings(
        storage=gcs_settings.storage,
        mlflow_tracking_uri=local.mlflow_tracking_uri,
        review_threshold=local.review_threshold,
    )
    bucket = open_storage(settings.storage, settings)
    bucket.write_bytes("in/tickets.csv", to_csv_bytes(tickets.head(120)))
    root = settings.storage.rstrip("/")
    result = predict_file(settings, f"{root}/in/tickets.csv", f"{root}/out/scored.csv")
    assert (result.rows, result.output) == (120, f"{root}/out/scored.csv")
    src = tmp_path / "in.csv"
    src.write_bytes(to_csv_bytes(tickets.head(120)))
    predict_file(settings, src, tmp_path / "scored.csv")
    assert bucket.read_bytes("out/scored.csv") == (tmp_path / "scored.csv").read_bytes()

    with pytest.raises(UserFacingError, match="nope.csv: does not exist"):
        predict_file(settings, f"{root}/nope.csv", f"{root}/out/never.csv")
    with pytest.raises(UserFacingError, match="names a bucket or folder"):
        predict_file(settings, f"{root}/in/tickets.csv", f"{root}/out/")
    with pytest.raises(ValueError, match="missing required columns"):
        bucket.write_bytes("in/bad.csv", b"title,description\nx,y\n")
        predict_file(settings, f"{root}/in/bad.csv", f"{root}/out/never.csv")
    assert bucket.list("out/") == ["out/scored.csv"]  # nothing half-written
