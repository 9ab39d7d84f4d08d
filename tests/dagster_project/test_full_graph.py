"""The whole asset graph, materialized for real: temp storage, temp MLflow SQLite, HTTP stubs."""

from __future__ import annotations

import time
from typing import Any

import pytest
from dagster import DagsterInstance, Definitions, materialize
from httpstub import HttpStub

from dagster_project.assets.model import MODEL_CHECK_NAMES, failed_model_checks
from dagster_project.definitions import ASSETS, build_defs
from dagster_project.resources import build_resources
from ticket_urgency.mlflow_utils import client
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import LocalStorage
from ticket_urgency.testing import free_port

FAST_CONFIG = {
    "ops": {
        "drift_report": {"config": {"nannyml": False}},
        "ticket_urgency_model": {"config": {"search": False, "compare_baseline": False}},
    }
}


def test_definitions_load_and_hold_the_workflow() -> None:
    defs = build_defs(get_settings())
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {a.key.to_user_string() for a in ASSETS}
    graph = repo.asset_graph
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    assert parents["combined_tickets"] == {"reference_tickets", "new_tickets"}
    assert parents["drift_report"] == {"reference_tickets", "new_tickets"}
    assert parents["ticket_urgency_model"] == {"combined_tickets"}
    assert parents["production_model"] == {"ticket_urgency_model"}
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["drift_report"] == "monitoring" and groups["production_model"] == "model"
    assert {s.name for s in repo.schedule_defs} == {"daily_drift_monitoring"}
    assert {s.name for s in repo.sensor_defs} == {"drift_retrain_sensor"}
    assert all(graph.get(k).description for k in graph.get_all_asset_keys())


def test_materialize_everything_registers_promotes_and_reloads(
    uploaded: LocalStorage,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with HttpStub(reply={"status": "reloaded", "model_version": "1"}) as api, HttpStub() as hook:
        dead = f"http://127.0.0.1:{free_port()}"  # an instance that is down: a warning only
        monkeypatch.setenv("TICKET_URGENCY_SERVING_URLS", f"{api.url},{dead}")
        monkeypatch.setenv("TICKET_URGENCY_ADMIN_TOKEN", "admin-secret")
        monkeypatch.setenv("TICKET_URGENCY_WEBHOOK_URL", hook.url)
        monkeypatch.setenv("TICKET_URGENCY_DRIFT_MIN_ROWS", "100")
        get_settings.cache_clear()
        settings = get_settings()
        resources: dict[str, Any] = build_resources(settings)
        defs = build_defs(settings)
        checks = list(defs.asset_checks or [])
        start = time.monotonic()
        result = materialize(
            [*ASSETS, *checks], resources=resources, instance=instance, run_config=FAST_CONFIG
        )
        elapsed = time.monotonic() - start
    assert result.success, elapsed
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["model_beats_majority_baseline"]
    assert evaluations["model_signature_present"]
    assert all(evaluations.values()), evaluations

    mats = {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }
    assert set(mats) == {a.key.to_user_string() for a in ASSETS}
    model = mats["ticket_urgency_model"]
    version = str(model["version"].value)
    assert model["macro_f1"].value > 0.3
    assert str(model["mlflow_run"].value).startswith(f"runs:/{model['run_id'].value}")
    prod = mats["production_model"]
    assert prod["decision"].value == "promoted"
    assert prod["previous_version"].value == "none"
    assert prod["reload_ok"].value == 1
    assert prod["reload_failed"].value == 1
    drift = mats["drift_report"]
    assert drift["drift_detected"].value is True
    assert "| feature |" in drift["drift_scores"].value

    mv = client(settings).get_model_version_by_alias(settings.model_name, "production")
    assert str(mv.version) == version
    # the gate's guard: checks passed for this version, and for no other
    assert failed_model_checks(instance, version) == []
    assert failed_model_checks(instance, "999") == list(MODEL_CHECK_NAMES)

    (reload_call,) = api.requests
    assert reload_call.path == "/reload-model"
    assert reload_call.headers["Authorization"] == "Bearer admin-secret"
    events = sorted(r.body["event"] for r in hook.requests)
    assert events == ["drift_detected", "model_promoted", "reload_failed"]
    (failure,) = [r.body for r in hook.requests if r.body["event"] == "reload_failed"]
    assert failure["failures"][0]["url"] == f"{dead}/reload-model"
