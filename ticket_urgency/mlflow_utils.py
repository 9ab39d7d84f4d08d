"""MLflow plumbing shared by training and the registry: tracking set-up, experiment, runs.

Nothing here runs at import time; every function takes the :class:`Settings` it should use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from ticket_urgency.errors import UserFacingError
from ticket_urgency.settings import Settings


def configure(settings: Settings) -> None:
    """Point MLflow's fluent API at the tracking (and registry) URI of ``settings``."""
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_registry_uri or settings.mlflow_tracking_uri)


def client(settings: Settings) -> MlflowClient:
    """Return an :class:`MlflowClient` for the tracking and registry URIs of ``settings``."""
    return MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri,
        registry_uri=settings.mlflow_registry_uri or settings.mlflow_tracking_uri,
    )


def artifact_location(settings: Settings) -> str:
    """Return ``<storage root>/mlflow``: where the experiment stores models and plots.

    A ``gs://`` root gives a ``gs://`` location; a local root gives a ``file://`` URI of the
    absolute directory, so runs started from any working directory agree.
    """
    root = settings.storage.rstrip("/")
    if root.startswith("gs://"):
        return f"{root}/mlflow"
    return (Path(root.removeprefix("file://")).expanduser().resolve() / "mlflow").as_uri()


def get_or_create_experiment(settings: Settings) -> str:
    """Return the id of ``settings.experiment_name``, creating it in the storage root.

    A new experiment gets ``artifact_location = <storage root>/mlflow``; an existing one is used
    as it is (MLflow cannot move an experiment's artifacts).

    Raises:
        UserFacingError: When the experiment exists but is deleted.
    """
    c = client(settings)
    exp = c.get_experiment_by_name(settings.experiment_name)
    if exp is None:
        try:
            return c.create_experiment(
                settings.experiment_name, artifact_location=artifact_location(settings)
            )
        except mlflow.exceptions.MlflowException:
            exp = c.get_experiment_by_name(settings.experiment_name)  # lost a creation race
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        raise UserFacingError(
            f"MLflow experiment {settings.experiment_name!r} is deleted; restore it "
            "(mlflow experiments restore) or set TICKET_URGENCY_EXPERIMENT_NAME"
        )
    return str(exp.experiment_id)


@contextlib.contextmanager
def training_run(settings: Settings, run_name: str | None = None) -> Iterator[Run]:
    """Open the run a training step logs into.

    * Inside ``mlflow run`` (``MLFLOW_RUN_ID`` set) it resumes that run, in whatever
      experiment ``mlflow run`` chose; starting another run would fail with "active
      experiment ID does not match".
    * When a run is already active in this process (a caller's run) it is used as it is.
    * Otherwise a new run starts in :func:`get_or_create_experiment`.

    Yields:
        The active run.
    """
    configure(settings)
    active = mlflow.active_run()
    if active is not None:
        yield active
        return
    if settings.mlflow_run_id:
        with mlflow.start_run(run_id=settings.mlflow_run_id) as run:
            yield run
        return
    experiment_id = get_or_create_experiment(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        yield run
