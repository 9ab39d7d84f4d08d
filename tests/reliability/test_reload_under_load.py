"""Reloads under load: a real ``ticket-urgency serve`` (uvicorn) answers bounded loopback
traffic while 20 reloads alternate between two promoted versions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))
from serving_support import (  # noqa: E402
    ADMIN,
    TICKET,
    make_settings,
    promote,
    register,
    serve_env,
    small_pipeline,
    start_serve,
)

from ticket_urgency.contract import FEATURE_COLUMNS  # noqa: E402
from ticket_urgency.generate import generate_dataset  # noqa: E402
from ticket_urgency.settings import Settings  # noqa: E402

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

CLIENTS = 30
RELOADS = 20
MIN_LOAD_SECONDS = 12.0
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def serve(settings: Settings, log: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``ticket-urgency serve`` (output to ``log``) and wait until it is ready."""
    return start_serve(serve_env(settings), *args, log=log)


@pytest.fixture
def two_versions(tmp_path: Path) -> Settings:
    """A registry with versions 1 and 2 (different models); 1 is Production."""
    settings = make_settings(tmp_path, mlflow_registry_uri=None)
    ref, _ = generate_dataset(600, 10, seed=5)
    x, y = ref[list(FEATURE_COLUMNS)], ref["label_urgency"]
    register(settings, small_pipeline(1.0).fit(x, y))
    register(settings, small_pipeline(0.2).fit(x, y), promote_it=False)
    return settings


@pytest.fixture
def server(two_versions: Settings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "serve.log"
    proc, base = serve(two_versions, log)
    try:
        yield base, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sys.stdout.write(log.read_text(errors="replace")[-5000:])  # shown when a test fails


def test_twenty_reloads_under_load_lose_no_prediction(
    two_versions: Settings, server: tuple[str, Path]
) -> None:
    base, log = server
    # (sent at, status, model_version or error text) of every prediction
    answers: list[tuple[float, int, object]] = []
    reload_replies: list[dict[str, object]] = []
    last_reload_done: list[float] = []
    stop = asyncio.Event()

    async def client_loop(i: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            n = 0
            while not stop.is_set():
                body = {**TICKET, "ticket_id": f"c{i}-{n}"}
                sent = time.monotonic()
                try:
                    r = await client.post("/predict", json=body)
                    version = r.json().get("model_version") if r.status_code == 200 else r.text
                    answers.append((sent, r.status_code, version))
                except httpx.HTTPError as exc:
                    answers.append((sent, 0, repr(exc)))
                n += 1

    async def reloader() -> None:
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=base, timeout=120) as admin:
            await asyncio.sleep(1.0)  # let the load ramp up
            for i in range(RELOADS):
                target = "2" if i % 2 == 0 else "1"
                await asyncio.to_thread(promote, two_versions, target)
                r = await admin.post("/reload-model", headers=AUTH)
                assert r.status_code == 200, r.text
                reload_replies.append(r.json())
            last_reload_done.append(time.monotonic())
            # keep the load on for a while after the last reload
            await asyncio.sleep(max(2.0, MIN_LOAD_SECONDS - (time.monotonic() - started)))
        stop.set()

    async def scenario() -> None:
        clients = [asyncio.create_task(client_loop(i)) for i in range(CLIENTS)]
        try:
            await reloader()
        finally:
            stop.set()
            await asyncio.gather(*clients)

    asyncio.run(scenario())

    assert [r["status"] for r in reload_replies] == ["reloaded"] * RELOADS
    assert [r["model_version"] for r in reload_replies] == [2, 1] * (RELOADS // 2)
    failed = [a for a in answers if a[1] != 200]
    assert failed == [], f"{len(failed)} failed predictions, e.g. {failed[:5]}"
    versions = {a[2] for a in answers}
    assert versions == {1, 2}, versions
    after = [a[2] for a in answers if a[0] > last_reload_done[0]]
    assert len(after) >= CLIENTS, len(after)
    assert set(after) == {1}, f"answers after the last reload: {set(after)}"
    assert len(answers) > 20 * CLIENTS
    out = log.read_text(errors="replace")
    assert out.count("model reload failed") == 0
    assert ADMIN not in out
    sys.stdout.write(f"predictions sent: {len(answers)}, failed: 0, reloads: {RELOADS}\n")
