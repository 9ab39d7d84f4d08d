"""Reload calls and webhooks against a real local HTTP server."""

from __future__ import annotations

import pytest
from dagster import EnvVar
from httpstub import HttpStub

from dagster_project.resources import NotifierResource, ServingResource, build_resources
from ticket_urgency.notify import reload_serving
from ticket_urgency.settings import get_settings
from ticket_urgency.testing import free_port


def test_reload_posts_to_each_url_with_the_bearer_token() -> None:
    with HttpStub(reply={"status": "reloaded", "model_version": "2"}) as a, HttpStub() as b:
        outcomes = reload_serving([a.url + "/", b.url], "s3cret", timeout=5)
    assert [o.ok for o in outcomes] == [True, True]
    assert outcomes[0].body["model_version"] == "2"
    for stub in (a, b):
        (req,) = stub.requests
        assert req.path == "/reload-model"
        assert req.headers["Authorization"] == "Bearer s3cret"


def test_refused_failed_and_unreachable_reloads_are_outcomes_not_exceptions() -> None:
    with (
        HttpStub(status=403, reply={"detail": "bad token"}) as refused,
        HttpStub(reply={"status": "failed", "detail": "smoke test failed"}) as failed,
    ):
        dead = f"http://127.0.0.1:{free_port()}"
        outcomes = reload_serving([refused.url, failed.url, dead], None, timeout=3)
    assert [o.ok for o in outcomes] == [False, False, False]
    assert outcomes[0].status == 403 and "Authorization" not in refused.requests[0].headers
    assert outcomes[1].error == "smoke test failed"
    assert outcomes[2].status is None and outcomes[2].error.startswith("unreachable")


def test_notifier_posts_json_and_is_silent_without_url() -> None:
    assert NotifierResource().send("drift_detected", {"x": 1}) is None
    with HttpStub(reply={"ok": True}) as hook:
        outcome = NotifierResource(webhook_url=hook.url + "/hook").send("model_promoted", {"v": 3})
    assert outcome is not None and outcome.ok
    (req,) = hook.requests
    assert req.path == "/hook"
    assert req.body == {"event": "model_promoted", "source": "ticket-urgency-orchestrator", "v": 3}


def test_admin_token_is_an_envvar_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    serving = build_resources(get_settings())["serving"]
    assert isinstance(serving, ServingResource) and serving.admin_token is None
    monkeypatch.setenv("TICKET_URGENCY_ADMIN_TOKEN", "tok")
    monkeypatch.setenv("TICKET_URGENCY_SERVING_URLS", "http://a:1, http://b:2/")
    get_settings.cache_clear()
    serving = build_resources(get_settings())["serving"]
    assert serving.admin_token == EnvVar("TICKET_URGENCY_ADMIN_TOKEN")
    assert serving.urls == ["http://a:1", "http://b:2"]
