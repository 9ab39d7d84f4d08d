"""Helpers of the serving tests: a small pipeline, plain-MLflow registration, settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from ticket_urgency.settings import Settings
from ticket_urgency.testing import free_port

TICKET = {
    "title": "Application running slow",
    "description": "Report export stuck at 80 percent for several minutes.",
    "source": "web",
    "customer_tier": "Gold",
}
ADMIN = "s3cret-admin"


def small_pipeline(c: float = 1.0) -> Pipeline:
    """The original design, small: TF-IDF on title and description, one-hot, logistic reg."""
    features = ColumnTransformer(
        [
            ("title", TfidfVectorizer(ngram_range=(1, 2), max_features=3000), "title"),
            ("desc", TfidfVectorizer(max_features=3000, sublinear_tf=True), "description"),
            ("meta", OneHotEncoder(handle_unknown="ignore"), ["source", "customer_tier"]),
        ]
    )
    return Pipeline([("features", features), ("clf", LogisticRegression(C=c, max_iter=500))])


def register(settings: Settings, model: Any, *, promote_it: bool = True) -> str:
    """Log ``model`` with plain MLflow, register it and (optionally) make it Production."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name("serving-tests")
    if exp is None:
        root = Path(settings.storage).parent / "artifacts"
        exp_id = client.create_experiment("serving-tests", artifact_location=str(root))
    else:
        exp_id = exp.experiment_id
    with mlflow.start_run(experiment_id=exp_id):
        mlflow.log_metric("macro_f1", 0.5)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
            registered_model_name=settings.model_name,
        )
    version = str(info.registered_model_version)
    if promote_it:
        promote(settings, version)
    return version


def promote(settings: Settings, version: str) -> None:
    """Stage ``version`` Production (archiving the old one) and point the alias at it."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
    client.transition_model_version_stage(
        settings.model_name, version, "Production", archive_existing_versions=True
    )
    client.set_registered_model_alias(settings.model_name, "production", version)


def build_registry(root: Path, fitted: dict[str, Any]) -> Path:
    """Register, once per session, the versions the tests promote later.

    1: ``fitted["v1"]`` (Production), 2: ``fitted["v2"]``, 3: a regressor without
    ``predict_proba``, 4: ``fitted["v2"]`` with its artifacts deleted. Returns the database file.
    """
    import numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    settings = make_settings(root)
    register(settings, fitted["v1"])
    register(settings, fitted["v2"], promote_it=False)
    register(settings, LinearRegression().fit(np.eye(3), [0.0, 1.0, 2.0]), promote_it=False)
    v4 = register(settings, fitted["v2"], promote_it=False)
    uri = settings.mlflow_tracking_uri
    source = MlflowClient(uri, uri).get_model_version_download_uri(settings.model_name, v4)
    local = Path(source.removeprefix("file://"))
    assert local.is_dir(), source
    shutil.rmtree(local)
    return root / "mlflow.db"


def copy_registry(template: Path, tmp: Path, **overrides: Any) -> Settings:
    """Settings on a private copy of the session registry (artifacts are shared, read-only)."""
    shutil.copyfile(template, tmp / "mlflow.db")
    return make_settings(tmp, **overrides)


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    """Settings on a tmp storage + SQLite registry, admin token set."""
    values: dict[str, Any] = {
        "storage": str(tmp / "store"),
        "mlflow_tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "admin_token": ADMIN,
        "prediction_log_flush_seconds": 0.2,
        "predict_token": None,
        "reload_marker": None,
        "poll_seconds": 0.0,
    }
    values.update(overrides)
    return Settings(**values)


def serve_env(settings: Settings) -> dict[str, str]:
    """Environment of a ``ticket-urgency serve`` subprocess on ``settings``' registry."""
    # MLFLOW_REGISTRY_URI too: mlflow.set_registry_uri() exports it, other tests' leak here
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TICKET_URGENCY_", "MLFLOW_REGISTRY_URI"))
    }
    env.update(
        {
            "TICKET_URGENCY_STORAGE": settings.storage,
            "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "TICKET_URGENCY_ADMIN_TOKEN": ADMIN,
            "NML_DISABLE_USAGE_LOGGING": "1",
        }
    )
    return env


def start_serve(
    env: dict[str, str],
    *args: str,
    ready: int = 200,
    timeout: float = 120.0,
    log: Path | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ticket-urgency serve`` on a free port; wait until ``/ready`` answers ``ready``.

    Args:
        env: The server's environment (see :func:`serve_env`).
        args: More ``serve`` options.
        ready: The ``/ready`` status to wait for.
        timeout: Seconds to wait.
        log: Write the server's output to this file (long load tests: a pipe nobody reads
            would fill up and block the server); piped when None.

    Returns:
        The process and the base URL.
    """
    port = free_port()
    exe = Path(sys.executable).with_name("ticket-urgency")
    cmd = [str(exe), "serve", "--port", str(port), *args]
    if log is None:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    else:
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def output() -> str:
        if log is not None:
            return log.read_text(errors="replace")
        return proc.stdout.read().decode(errors="replace") if proc.stdout else ""

    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{output()}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == ready:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    if log is not None:
        raise AssertionError(f"serve did not answer {ready} on /ready:\n{output()}")
    raise AssertionError(f"serve did not answer {ready} on /ready")
