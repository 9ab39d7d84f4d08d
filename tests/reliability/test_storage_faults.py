"""Storage faults on GCS: the emulator dies mid-upload, or answers uploads with 503.

A private emulator keeps its objects on disk so it can be killed and restarted with its data.
``upload`` must fail with one line (exit 1, "storage failed: ..."), leave the reference byte
identical, and a combined set that no longer matches its inputs must be detected
(``combined_state``) and rebuilt (``ensure_combined`` or the next upload).
"""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from data_support import NEW_CSV, REFERENCE_CSV, DiskGcsEmulator, snapshot_storage
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import parse_tickets
from ticket_urgency.datasets import (
    COMBINED_KEY,
    NEW_KEY,
    REFERENCE_KEY,
    build_combined,
    combined_state,
    ensure_combined,
)
from ticket_urgency.settings import get_settings
from ticket_urgency.storage import GCSStorage, make_gcs_client, open_storage
from ticket_urgency.testing import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.gcs]
runner = CliRunner()
LATE = (
    b"ticket_id,title,description,source,customer_tier,label_urgency\n"
    b"n-2,Export broken,CSV export is empty,email,Bronze,low\n"
    b"n-4,New one,Something new,web,Free,high\n"
)


def _point_at(monkeypatch: pytest.MonkeyPatch, host: str, bucket: str) -> GCSStorage:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
    monkeypatch.setenv("TICKET_URGENCY_STORAGE", f"gs://{bucket}")
    monkeypatch.setenv("TICKET_URGENCY_GCS_RETRY_SECONDS", "2")
    get_settings.cache_clear()
    storage = open_storage(get_settings().storage, get_settings())
    assert isinstance(storage, GCSStorage)
    return storage


@pytest.fixture
def seeded(
    disk_emulator: DiskGcsEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[GCSStorage, Path, Path]:
    """A bucket on the private emulator holding a valid reference, new data and combined."""
    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    storage = _point_at(monkeypatch, disk_emulator.host, bucket)
    make_gcs_client(get_settings()).create_bucket(bucket)
    ref, late = tmp_path / "ref.csv", tmp_path / "late.csv"
    ref.write_bytes(REFERENCE_CSV)
    late.write_bytes(LATE)
    new = tmp_path / "new.csv"
    new.write_bytes(NEW_CSV)
    result = runner.invoke(app, ["upload", "--reference", str(ref), "--new", str(new)])
    assert result.exit_code == 0, result.stderr
    assert combined_state(storage).fresh
    return storage, ref, late


def _kill_before_write_of(
    monkeypatch: pytest.MonkeyPatch, emulator: DiskGcsEmulator, key: str
) -> list[str]:
    """Kill the emulator just before the first write of ``key``; return the keys written."""
    written: list[str] = []
    real = GCSStorage._upload

    def upload(self: GCSStorage, k: str, data: bytes, generation: int | None) -> None:
        if k == key:
            emulator.kill()
        real(self, k, data, generation)
        written.append(k)

    monkeypatch.setattr(GCSStorage, "_upload", upload)
    return written


def _assert_storage_failed(result: Any) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: storage failed: could not "), lines
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("killed_at", [NEW_KEY, COMBINED_KEY])
def test_emulator_killed_mid_upload(
    killed_at: str,
    seeded: tuple[GCSStorage, Path, Path],
    disk_emulator: DiskGcsEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage, ref, late = seeded
    before = snapshot_storage(storage)
    written = _kill_before_write_of(monkeypatch, disk_emulator, killed_at)

    result = runner.invoke(app, ["upload", "--reference", str(ref), "--new", str(late)])

    _assert_storage_failed(result)
    assert killed_at not in written
    monkeypatch.undo()  # real uploads again, but keep the env pointing at the emulator
    storage = _point_at(monkeypatch, disk_emulator.host, storage.bucket_name)
    disk_emulator.start()  # same port, same on-disk objects

    after = snapshot_storage(storage)
    assert after[REFERENCE_KEY] == before[REFERENCE_KEY]  # the frozen reference is untouched
    for key, data in after.items():  # every object is the old or the new version, whole
        if key.endswith(".csv"):
            parse_tickets(data, key)
    state = combined_state(storage)
    if killed_at == NEW_KEY:
        assert after == before and state.fresh
    else:  # new data was merged, combined was not rebuilt: detected as stale
        assert after[NEW_KEY] != before[NEW_KEY]
        assert not state.fresh and "new_sha256" in state.reason
        combined, rebuilt = ensure_combined(storage)
        assert rebuilt and combined_state(storage).fresh
        expected = build_combined(
            parse_tickets(after[REFERENCE_KEY], "ref", labels="required"),
            parse_tickets(after[NEW_KEY], "new"),
        )
        assert combined["ticket_id"].tolist() == expected["ticket_id"].tolist()

    # and the same upload, retried, completes and counts correctly
    result = runner.invoke(app, ["upload", "--reference", str(ref), "--new", str(late), "--json"])
    assert result.exit_code == 0, result.stderr
    assert combined_state(storage).fresh
    stored_new = parse_tickets(storage.read_bytes(NEW_KEY), "new").set_index("ticket_id")
    assert stored_new.loc["n-2", "label_urgency"] == "low"
    assert set(stored_new.index) == {"n-1", "n-2", "n-3", "n-4"}
    assert storage.read_bytes(REFERENCE_KEY) == before[REFERENCE_KEY]


class _FaultyProxy(http.server.ThreadingHTTPServer):
    """Forwards to the emulator, but answers 503 to uploads while ``failing`` is set."""

    failing = False


def _proxy_handler(target: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            assert isinstance(self.server, _FaultyProxy)
            if self.server.failing and self.path.startswith("/upload/"):
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                payload = b'{"error": {"code": 503, "message": "backend unavailable"}}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            resp = requests.request(
                self.command, target + self.path, data=body, headers=headers, timeout=10
            )
            self.send_response(resp.status_code)
            for k, v in resp.headers.items():
                if k.lower() not in {"content-length", "transfer-encoding", "connection"}:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(resp.content)))
            self.end_headers()
            self.wfile.write(resp.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler


@pytest.fixture
def faulty_proxy(disk_emulator: DiskGcsEmulator) -> Iterator[_FaultyProxy]:
    server = _FaultyProxy(("127.0.0.1", free_port()), _proxy_handler(disk_emulator.host))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_upload_rejected_with_503_changes_nothing(
    seeded: tuple[GCSStorage, Path, Path],
    faulty_proxy: _FaultyProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage, ref, late = seeded
    before = snapshot_storage(storage)
    host = f"http://127.0.0.1:{faulty_proxy.server_address[1]}"
    _point_at(monkeypatch, host, storage.bucket_name)
    faulty_proxy.failing = True

    result = runner.invoke(app, ["upload", "--reference", str(ref), "--new", str(late)])

    _assert_storage_failed(result)
    assert "503" in result.stderr or "unavailable" in result.stderr.lower()
    assert snapshot_storage(storage) == before
    assert combined_state(storage).fresh
    faulty_proxy.failing = False
    result = runner.invoke(app, ["upload", "--new", str(late)])
    assert result.exit_code == 0, result.stderr
    assert combined_state(storage).fresh


def test_tampered_combined_is_detected_and_rebuilt(
    seeded: tuple[GCSStorage, Path, Path],
) -> None:
    """A combined set that no longer matches its inputs (partial write, manual edit, a racing
    writer) is detected by its digests and rebuilt from the reference and new data."""
    storage, _, _ = seeded
    good = storage.read_bytes(COMBINED_KEY)
    storage.write_bytes(COMBINED_KEY, b"".join(good.splitlines(keepends=True)[:2]))
    state = combined_state(storage)
    assert not state.fresh and "combined_sha256" in state.reason
    _, rebuilt = ensure_combined(storage)
    assert rebuilt and storage.read_bytes(COMBINED_KEY) == good
    _, rebuilt = ensure_combined(storage)
    assert not rebuilt
