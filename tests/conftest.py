"""Shared fixtures: settings isolation, temp storage, a GCS emulator, small ticket files."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# Two cores shared by test processes and servers: one BLAS thread each avoids oversubscription.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from ticket_urgency.settings import Settings, get_settings  # noqa: E402
from ticket_urgency.storage import GCSStorage, LocalStorage, make_gcs_client  # noqa: E402
from ticket_urgency.testing import GcsEmulator  # noqa: E402

_OUR_VARS = (
    "TICKET_URGENCY_",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
    "STORAGE_EMULATOR_HOST",
)


_MLFLOW_PROCESS_VARS = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
)


@pytest.fixture
def _mlflow_clean() -> Iterator[None]:
    """Set up before and torn down after the env isolation: MLflow writes some variables into
    os.environ itself (``set_tracking_uri``/``set_registry_uri``), outside monkeypatch's
    bookkeeping, so they are removed here once monkeypatch has restored the rest."""
    yield
    _reset_mlflow_globals()
    for key in _MLFLOW_PROCESS_VARS:
        os.environ.pop(key, None)


@pytest.fixture(autouse=True)
def _isolated_env(
    _mlflow_clean: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[None]:
    """Every test starts with none of the project's variables set and fresh settings."""
    for key in list(os.environ):
        if key.startswith(_OUR_VARS):
            monkeypatch.delenv(key, raising=False)
    _reset_mlflow_globals()
    monkeypatch.setenv("TICKET_URGENCY_STORAGE", str(tmp_path / "store"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    _reset_mlflow_globals()


def _reset_mlflow_globals() -> None:
    """Forget MLflow's process-global state (URIs, active run and experiment) between tests.

    The CLI sets tracking/registry URIs once per process, which is right for a process but
    leaks between tests that share one interpreter.
    """
    if "mlflow" not in sys.modules:
        return
    import mlflow
    from mlflow.tracking import fluent
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    while mlflow.active_run() is not None:
        mlflow.end_run()
    tracking_utils._tracking_uri = None
    registry_utils._registry_uri = None
    fluent._active_experiment_id = None


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    """A LocalStorage rooted in a temp directory."""
    return LocalStorage(tmp_path / "store")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulator]:
    """One gcp-storage-emulator process for the whole session."""
    with GcsEmulator() as emu:
        yield emu


@pytest.fixture
def gcs_settings(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings pointing at a fresh bucket on the emulator (also exported to the env)."""
    bucket = f"test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.host)
    monkeypatch.setenv("TICKET_URGENCY_STORAGE", f"gs://{bucket}")
    get_settings.cache_clear()
    settings = get_settings()
    make_gcs_client(settings).create_bucket(bucket)
    return settings


@pytest.fixture
def gcs_storage(gcs_settings: Settings) -> GCSStorage:
    """A GCSStorage on a fresh emulator bucket."""
    from ticket_urgency.storage import open_storage

    storage = open_storage(gcs_settings.storage, gcs_settings)
    assert isinstance(storage, GCSStorage)
    return storage


@pytest.fixture(params=["local", "gcs"])
def any_storage(request: pytest.FixtureRequest) -> LocalStorage | GCSStorage:
    """Each test using this runs on local storage and on the GCS emulator."""
    name = "local_storage" if request.param == "local" else "gcs_storage"
    storage: LocalStorage | GCSStorage = request.getfixturevalue(name)
    return storage
