"""The served-prediction log: batches in storage, masking, outages, shutdown flush, reader."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from serving_support import TICKET

from serving.app import create_app
from ticket_urgency.pii import PiiMaskingFilter, mask_pii
from ticket_urgency.prediction_log import (
    PredictionLogger,
    Served,
    read_prediction_log,
    write_records,
)
from ticket_urgency.settings import Settings
from ticket_urgency.storage import LocalStorage, StorageError

pytestmark = pytest.mark.timeout(300)

PII_TICKET = {
    **TICKET,
    "title": "Call me at +1 (555) 010-9999 please",
    "description": "Write to jane.doe@example.com or 555-123-4567. Export stuck at 80 percent.",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+x@mail.example.co.uk now", "mail [EMAIL] now"),
        ("call +44 20 7946 0958 today", "call [PHONE] today"),
        ("(555) 123-4567", "[PHONE]"),
        ("555.123.4567 or 5551234567", "[PHONE] or [PHONE]"),
        (
            "stuck at 80 percent since 2024-01-15 10:30",
            "stuck at 80 percent since 2024-01-15 10:30",
        ),
        ("error 0x80070005 on 10.0.0.12, v3.2.1, order 123456", None),
        # digits of other scripts count too (the quick ASCII digit count must not skip them)
        ("ruf an: ٠١٢٣٤٥٦٧٨٩ bitte", "ruf an: [PHONE] bitte"),
        ("Tel ５５５１２３４５６７ — später", "Tel [PHONE] — später"),
        ("nur 12 34 56 Ziffern, ümlaut", None),
    ],
)
def test_mask_pii(text: str, expected: str | None) -> None:
    assert mask_pii(text) == (text if expected is None else expected)


def test_log_masking_filter() -> None:
    import logging

    record = logging.LogRecord("x", logging.INFO, "f", 1, "ticket from %s", ("a@b.example",), None)
    assert PiiMaskingFilter().filter(record)
    assert record.getMessage() == "ticket from [EMAIL]"


def _lines(root: Path) -> list[dict[str, object]]:
    out = []
    for f in sorted((root / "predictions").rglob("*.jsonl")):
        out += [orjson.loads(line) for line in f.read_bytes().splitlines()]
    return out


def test_served_predictions_are_logged_masked_in_batches(registry: Settings) -> None:
    settings = registry.model_copy(
        update={"prediction_log_flush_seconds": 30.0, "prediction_log_batch_size": 5}
    )
    root = Path(settings.storage)
    with TestClient(create_app(settings)) as client:
        answers = [client.post("/predict", json=PII_TICKET).json() for _ in range(3)]
        client.post("/predict/batch", json={"tickets": [{**TICKET, "ticket_id": "T-1"}] * 2})
        deadline = time.monotonic() + 20  # batch size 5 reached: flushed without waiting 30 s
        while time.monotonic() < deadline and len(_lines(root)) < 5:
            time.sleep(0.1)
        assert len(_lines(root)) == 5
        client.post("/invocations", json={"inputs": [TICKET]})
    # shutdown flushed the last one
    records = _lines(root)
    assert len(records) == 6
    files = list((root / "predictions").rglob("*.jsonl"))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert all(f.parent.name == today for f in files) and len(files) == 2
    first = records[0]
    assert first["title"] == "Call me at [PHONE] please"
    assert first["description"] == "Write to [EMAIL] or [PHONE]. Export stuck at 80 percent."
    assert first["prediction"] == answers[0]["prediction"]
    assert first["probabilities"] == answers[0]["probabilities"]
    assert first["model_version"] == "1" and first["endpoint"] == "predict"
    assert str(first["ticket_id"]).startswith("h-")
    assert [r["ticket_id"] for r in records[3:5]] == ["T-1", "T-1"]
    assert records[5]["endpoint"] == "invocations"
    raw = b"".join(f.read_bytes() for f in files)
    assert b"jane.doe" not in raw and b"555-123-4567" not in raw


class FlakyStorage(LocalStorage):
    """Local storage whose writes fail while ``down`` is set (an outage)."""

    down = True

    def create(self, key: str, data: bytes) -> None:
        if self.down:
            raise StorageError("bucket unavailable")
        super().create(key, data)


def test_storage_outage_never_fails_a_prediction_and_is_counted(
    registry: Settings, tmp_path: Path
) -> None:
    import serving.app as app_module

    flaky = FlakyStorage(tmp_path / "flaky")
    original = app_module._prediction_logger

    def with_flaky(settings: Settings, metrics: object) -> PredictionLogger | None:
        plog = original(settings, metrics)  # type: ignore[arg-type]
        assert plog is not None
        plog.storage = flaky
        return plog

    app_module._prediction_logger = with_flaky  # type: ignore[assignment]
    try:
        settings = registry.model_copy(update={"prediction_log_flush_seconds": 0.1})
        with TestClient(create_app(settings)) as client:
            for _ in range(4):
                assert client.post("/predict", json=TICKET).status_code == 200
            deadline = time.monotonic() + 20
            text = ""
            while time.monotonic() < deadline:
                text = client.get("/metrics").text
                if "ticket_urgency_prediction_log_failures_total 0.0" not in text:
                    break
                time.sleep(0.1)
            assert "ticket_urgency_prediction_log_failures_total 0.0" not in text
            assert "ticket_urgency_prediction_log_failed_predictions_total" in text
            flaky.down = False  # the bucket is back: the queued predictions are written
        assert len(read_prediction_log(flaky)) == 4
    finally:
        app_module._prediction_logger = original  # type: ignore[assignment]


def test_read_prediction_log_since(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    now = datetime.now(UTC)
    old = now - timedelta(days=3)
    items = [
        Served(TICKET, "low", [0.7, 0.3], ["low", "high"], "1", old.timestamp(), "predict"),
        Served(PII_TICKET, "high", [0.2, 0.8], ["low", "high"], "2", now.timestamp(), "predict"),
    ]
    from ticket_urgency.prediction_log import to_record

    write_records(storage, [to_record(i) for i in items])
    assert len(storage.list("predictions/")) == 2  # one file per day
    everything = read_prediction_log(storage)
    assert everything["prediction"].tolist() == ["low", "high"]
    assert {"ticket_id", "created_at", "title", "description", "source", "customer_tier"} <= set(
        everything.columns
    )
    recent = read_prediction_log(storage, since=now.date())
    assert recent["prediction"].tolist() == ["high"]
    assert recent["title"].iloc[0] == "Call me at [PHONE] please"
    assert read_prediction_log(storage, since=now + timedelta(hours=1)).empty
    assert read_prediction_log(LocalStorage(tmp_path / "empty")).empty


def test_a_prediction_that_cannot_be_recorded_is_counted_and_the_rest_are_written(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path)
    errors: list[tuple[int, Exception]] = []
    plog = PredictionLogger(storage, on_error=lambda n, exc: errors.append((n, exc)))
    now = time.time()
    bad = Served(TICKET, "low", [0.7], ["low", "high"], "1", now, "predict")  # 1 proba, 2 classes
    good = Served(TICKET, "high", [0.2, 0.8], ["low", "high"], "1", now, "predict")
    plog.submit([good, bad, good])
    assert plog.flush() == 2
    assert [n for n, _ in errors] == [1]
    assert read_prediction_log(storage)["prediction"].tolist() == ["high", "high"]


def test_a_lone_surrogate_is_replaced_scored_and_logged(registry: Settings) -> None:
    raw = (
        b'{"title": "VPN down \\ud800", "description": "cannot connect", '
        b'"source": "web", "customer_tier": "Gold"}'
    )
    with TestClient(create_app(registry)) as client:
        r = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert client.app.state.runtime.prediction_log.flush() == 1  # type: ignore[attr-defined]
    log = read_prediction_log(LocalStorage(Path(registry.storage)))
    assert log["title"].tolist() == ["VPN down \ufffd"]
