"""`ticket-urgency serve` as a real uvicorn subprocess: the curl calls, and a reload that
reaches every worker of ``--workers 2``."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import pytest
from serving_support import ADMIN, TICKET, promote, serve_env, start_serve

from ticket_urgency.settings import Settings

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

_VERSION = re.compile(r'^ticket_urgency_model_version\{pid="(\d+)"\} (\S+)$', re.M)


def _serve(settings: Settings, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    return start_serve(serve_env(settings), *args)


def _versions(base: str) -> dict[str, str]:
    return dict(_VERSION.findall(httpx.get(f"{base}/metrics", timeout=5).text))


def test_reload_reaches_every_worker(
    registry: Settings, stop: list[subprocess.Popen[bytes]]
) -> None:
    proc, base = _serve(registry, "--workers", "2")
    stop.append(proc)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and list(_versions(base).values()) != ["1.0", "1.0"]:
        time.sleep(0.3)  # the second worker may still be loading
    assert set(_versions(base).values()) == {"1.0"} and len(_versions(base)) == 2

    promote(registry, "2")
    r = httpx.post(f"{base}/reload-model", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == 2, r.json()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and set(_versions(base).values()) != {"2.0"}:
        time.sleep(0.2)
    assert set(_versions(base).values()) == {"2.0"} and len(_versions(base)) == 2
    # every answer, whichever worker takes the connection, comes from version 2
    for _ in range(30):
        with httpx.Client() as client:  # a fresh connection each time
            assert client.post(f"{base}/predict", json=TICKET).json()["model_version"] == 2


def test_the_original_curl_calls(registry: Settings, stop: list[subprocess.Popen[bytes]]) -> None:
    proc, base = _serve(registry)
    stop.append(proc)
    port = base.rsplit(":", 1)[1]
    data = (
        '{"title": "Application running slow", "description": "Report export stuck at 80 '
        'percent for several minutes.", "source": "web", "customer_tier": "Gold"}'
    )
    curl = ["curl", "-s", "-X", "POST", f"localhost:{port}/predict"]
    out = subprocess.run(
        [*curl, "-H", "Content-Type: application/json", "-d", data],
        capture_output=True,
        check=True,
        timeout=30,
    )
    body = httpx.Response(200, content=out.stdout).json()
    assert body["model_version"] == 1 and body["prediction"] in body["probabilities"]
    reload_cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]
    reload_cmd += [f"localhost:{port}/reload-model", "-H", f"Authorization: Bearer {ADMIN}"]
    code = subprocess.run(reload_cmd, capture_output=True, check=True, timeout=60)
    assert code.stdout == b"200"
    bad = subprocess.run(
        [*curl, "-o", "/dev/null", "-w", "%{http_code}", "-d", "{"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert bad.stdout == b"422"
