"""The ``/predict`` fast lane: same answers as the FastAPI route, and it really answers.

Two apps on the same registry, one with the lane and one without, get the same requests: every
status, body and content type must match, valid or not. A second test drives the lane as plain
ASGI around a recording app, to show which requests it answers itself and which it hands on
(with the body intact).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serving_support import TICKET, copy_registry

from serving.app import create_app
from serving.fast_lane import PredictFastLane
from ticket_urgency.prediction_log import read_prediction_log
from ticket_urgency.settings import Settings
from ticket_urgency.storage import open_storage

pytestmark = pytest.mark.timeout(300)

JSON = {"Content-Type": "application/json"}

CASES: list[tuple[str, bytes, dict[str, str]]] = [
    ("valid", json.dumps(TICKET).encode(), JSON),
    ("charset", json.dumps(TICKET).encode(), {"Content-Type": "application/json; charset=utf-8"}),
    ("upper-case type", json.dumps(TICKET).encode(), {"Content-Type": "Application/JSON"}),
    ("int id + extra", json.dumps({**TICKET, "ticket_id": 42, "x": [1]}).encode(), JSON),
    ("null title", json.dumps({**TICKET, "title": None}).encode(), JSON),
    ("non-ASCII", json.dumps({**TICKET, "title": "Zugang gesperrt ✓ 登录"}).encode(), JSON),
    (
        "escaped",
        b'{"title":"a\\u00e9\\n","description":"","source":"web","customer_tier":"Gold"}',
        JSON,
    ),
    ("unknown category", json.dumps({**TICKET, "source": "pigeon"}).encode(), JSON),
    (
        "missing tier",
        json.dumps({k: v for k, v in TICKET.items() if k != "customer_tier"}).encode(),
        JSON,
    ),
    ("both empty", json.dumps({**TICKET, "title": " ", "description": ""}).encode(), JSON),
    ("list title", json.dumps({**TICKET, "title": ["a"]}).encode(), JSON),
    ("float id", json.dumps({**TICKET, "ticket_id": 1.5}).encode(), JSON),
    ("bool id", json.dumps({**TICKET, "ticket_id": True}).encode(), JSON),
    ("malformed", b"{not json", JSON),
    ("array", b"[]", JSON),
    ("string", b'"text"', JSON),
    ("empty body", b"", JSON),
    (
        "duplicate key",
        b'{"title": "a", "title": "VPN down", "source": "web", "customer_tier": "Gold"}',
        JSON,
    ),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + json.dumps(TICKET).encode(), JSON),
    ("huge id", json.dumps({**TICKET, "ticket_id": 10**30}).encode(), JSON),
    ("NaN", b'{"title": NaN, "source": "web", "customer_tier": "Gold"}', JSON),
    ("huge int", b'{"": -9223372036854775809, "customer_tier": "", "description": "0"}', JSON),
    ("not UTF-8", b'{"title": "caf\xe9", "source": "web", "customer_tier": "Gold"}', JSON),
    ("lone surrogate", b'{"title": "\\ud800", "source": "web", "customer_tier": "Gold"}', JSON),
    ("text/plain", json.dumps(TICKET).encode(), {"Content-Type": "text/plain"}),
    ("+json type", json.dumps(TICKET).encode(), {"Content-Type": "application/vnd.api+json"}),
    ("no type", json.dumps(TICKET).encode(), {}),
]


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, registry_template: Path
) -> Iterator[tuple[TestClient, TestClient, Settings]]:
    """The same registry served with the fast lane and without it."""
    tmp = tmp_path_factory.mktemp("lanes")
    (tmp / "with").mkdir()
    (tmp / "without").mkdir()
    with_lane = copy_registry(registry_template, tmp / "with")
    without = copy_registry(registry_template, tmp / "without")
    with (
        TestClient(create_app(with_lane)) as fast,
        TestClient(create_app(without, fast_lane=False)) as slow,
    ):
        yield fast, slow, with_lane


@pytest.mark.parametrize(("case", "body", "headers"), CASES, ids=[c[0] for c in CASES])
def test_the_lane_answers_exactly_like_the_route(
    pair: tuple[TestClient, TestClient, Settings],
    case: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    fast, slow, _ = pair
    a = fast.post("/predict", content=body, headers=headers)
    b = slow.post("/predict", content=body, headers=headers)
    assert a.status_code == b.status_code, (case, a.text, b.text)
    assert a.content == b.content, case
    assert a.headers["content-type"] == b.headers["content-type"]
    assert a.headers["content-length"] == str(len(a.content))


def test_the_lane_answers_valid_tickets_and_passes_the_rest_on(
    pair: tuple[TestClient, TestClient, Settings],
) -> None:
    fast, _, _ = pair
    handed_on: list[bytes] = []

    async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        handed_on.append(body)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    lane = PredictFastLane(route)

    async def call(path: str, body: bytes, content_type: bytes, chunk: int) -> tuple[int, bytes]:
        parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        incoming = [
            {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
            for i, p in enumerate(parts)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "headers": [(b"content-type", content_type)],
            "app": fast.app,
        }
        await lane(scope, receive, send)
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    valid = json.dumps({**TICKET, "ticket_id": "lane-1"}).encode()
    status, answer = fast.portal.call(call, "/predict", valid, b"application/json", 7)
    assert status == 200 and handed_on == []  # answered in the lane, from a chunked body
    assert json.loads(answer) == fast.post("/predict", content=valid, headers=JSON).json()

    invalid = json.dumps({**TICKET, "customer_tier": None}).encode()
    for path, body, ctype in [
        ("/predict", invalid, b"application/json"),
        ("/predict", valid, b"text/plain"),
        ("/predict/batch", valid, b"application/json"),
    ]:
        assert fast.portal.call(call, path, body, ctype, 5)[0] == 299
        assert handed_on[-1] == body  # replayed whole to the route
    assert len(handed_on) == 3


def test_the_lane_logs_and_counts_like_the_route(
    pair: tuple[TestClient, TestClient, Settings],
) -> None:
    fast, _, settings = pair
    ticket = {**TICKET, "ticket_id": "logged-by-the-lane"}
    before = _predict_count(fast.get("/metrics").text)
    assert fast.post("/predict", json=ticket).status_code == 200
    assert _predict_count(fast.get("/metrics").text) == before + 1
    fast.app.state.runtime.prediction_log.flush()
    log = read_prediction_log(open_storage(settings.storage, settings))
    row = log[log["ticket_id"] == "logged-by-the-lane"]
    assert len(row) == 1 and row.iloc[0]["endpoint"] == "predict"


def _predict_count(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if (
            line.startswith("ticket_urgency_http_requests_total{")
            and 'endpoint="/predict"' in line
            and 'status="200"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total
