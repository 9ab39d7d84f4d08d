"""The ``gcs`` deployment: storage through dagster-gcp's GCSResource, on the GCS emulator."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance, materialize

from dagster_project.assets.data import combined_tickets, new_tickets, reference_tickets
from dagster_project.checks import DATA_CHECKS
from dagster_project.definitions import build_defs
from dagster_project.gcs import GCSTicketStorage
from dagster_project.resources import build_resources
from ticket_urgency.datasets import REFERENCE_KEY, upload
from ticket_urgency.generate import generate_dataset
from ticket_urgency.settings import Settings, get_settings
from ticket_urgency.storage import GCSStorage

pytestmark = pytest.mark.gcs


def test_gcs_deployment_materializes_the_data_assets(
    gcs_storage: GCSStorage, gcs_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKET_URGENCY_DEPLOYMENT", "gcs")
    get_settings.cache_clear()
    settings = get_settings()
    reference, new = generate_dataset(200, 100, seed=5)
    upload(gcs_storage, reference, new)

    resources = build_resources(settings)
    assert isinstance(resources["storage"], GCSTicketStorage)
    assert build_defs(settings).executor is not None
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [reference_tickets, new_tickets, combined_tickets, *DATA_CHECKS],
            resources=resources,
            instance=instance,
        )
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    (ref,) = [
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key.to_user_string() == "reference_tickets"
    ]
    assert ref["uri"].value == gcs_storage.uri(REFERENCE_KEY)
    assert str(ref["uri"].value).startswith("gs://")


def test_gcs_deployment_needs_a_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKET_URGENCY_DEPLOYMENT", "gcs")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="gs://bucket"):
        build_resources(get_settings())


def test_gcs_deployment_materializes_the_whole_graph(
    gcs_storage: GCSStorage, gcs_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data, drift, train + register, promote: every artifact lands in the bucket."""
    from dagster_project.definitions import ASSETS

    monkeypatch.setenv("TICKET_URGENCY_DEPLOYMENT", "gcs")
    monkeypatch.setenv("TICKET_URGENCY_DRIFT_MIN_ROWS", "100")
    get_settings.cache_clear()
    settings = get_settings()
    reference, new = generate_dataset(600, 300, drift="topic", seed=5)
    upload(gcs_storage, reference, new)
    defs = build_defs(settings)
    fast = {
        "ops": {
            "drift_report": {"config": {"nannyml": False}},
            "ticket_urgency_model": {"config": {"search": False, "compare_baseline": False}},
        }
    }
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [*ASSETS, *(defs.asset_checks or [])],
            resources=build_resources(settings),
            instance=instance,
            run_config=fast,
        )
    assert result.success
    mats = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    assert mats["production_model"]["decision"].value == "promoted"
    bucket = settings.storage
    assert str(mats["drift_report"]["report_uri"].value).startswith(f"{bucket}/monitoring/")
    assert str(mats["ticket_urgency_model"]["snapshot_uri"].value).startswith(
        f"{bucket}/datasets/snapshots/"
    )
    assert any(k.endswith("/MLmodel") for k in gcs_storage.list("mlflow/"))
