"""The served-prediction log: batched, off the request path, PII-masked, in the storage.

Serving appends one cheap tuple per prediction to an in-memory queue
(:meth:`PredictionLogger.submit`); a background task flushes the queue every few seconds, or
as soon as a batch is full, to ``predictions/<YYYY-MM-DD>/<UTC timestamp>-<uuid>.jsonl``.
Masking, id derivation and JSON encoding happen at flush time, in a worker thread. A storage
outage never fails a prediction: the batch stays queued (bounded), the failure is reported
through ``on_error`` (a metric in serving) and the write is retried on the next flush.

:func:`read_prediction_log` reads the log back as a ticket-shaped DataFrame (for turning served
traffic into new data).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from ticket_urgency.contract import FEATURE_COLUMNS
from ticket_urgency.pii import mask_pii

if TYPE_CHECKING:
    import pandas as pd

    from ticket_urgency.storage import Storage

logger = logging.getLogger(__name__)

PREFIX = "predictions"
"""Storage folder of the log: ``predictions/<YYYY-MM-DD>/<file>.jsonl``."""

LOG_COLUMNS = (
    "ticket_id",
    "created_at",
    "title",
    "description",
    "source",
    "customer_tier",
    "prediction",
    "confidence",
    "probabilities",
    "model_version",
    "endpoint",
)
"""Columns of :func:`read_prediction_log` (``created_at`` is the prediction time)."""


class Served(NamedTuple):
    """One served prediction, as queued on the request path (nothing computed yet)."""

    ticket: Mapping[str, Any]
    prediction: str
    probabilities: Sequence[float]
    classes: Sequence[str]
    model_version: str
    at: float
    endpoint: str


def derive_ticket_id(title: str, description: str, source: str, tier: str, created_at: str) -> str:
    """Return the content-hash id the data contract derives for such a row."""
    joined = "\x1f".join([title, description, source, tier, created_at])
    return "h-" + hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def _created_at(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds")


def to_record(
    item: Served,
    max_text_chars: int | None = None,
    created_at: Callable[[float], str] = _created_at,
) -> dict[str, Any]:
    """Turn a queued prediction into the stored, masked record.

    Args:
        item: The queued prediction.
        max_text_chars: Stored text length cap.
        created_at: Formats the prediction time (the flush passes a cached formatter: the
            predictions of one request share their time).

    Returns:
        The record (see :data:`LOG_COLUMNS`).
    """
    fields = {}
    ticket = item.ticket
    for col in FEATURE_COLUMNS:
        value = ticket.get(col)
        text = "" if value is None else value if isinstance(value, str) else str(value)
        if max_text_chars is not None and len(text) > max_text_chars:
            text = text[:max_text_chars]
        fields[col] = mask_pii(text)
    created = created_at(item.at)
    ticket_id = ticket.get("ticket_id")
    if ticket_id is None or str(ticket_id).strip() == "":
        # derived from the masked fields: nothing personal in it
        ticket_id = derive_ticket_id(
            fields["title"],
            fields["description"],
            fields["source"],
            fields["customer_tier"],
            created,
        )
    else:
        ticket_id = mask_pii(str(ticket_id))
    probabilities = {c: float(p) for c, p in zip(item.classes, item.probabilities, strict=True)}
    return {
        "ticket_id": ticket_id,
        "created_at": created,
        **fields,
        "prediction": item.prediction,
        "confidence": max(probabilities.values()) if probabilities else None,
        "probabilities": probabilities,
        "model_version": item.model_version,
        "endpoint": item.endpoint,
    }


def log_key(day: date, now: datetime | None = None) -> str:
    """Return a fresh object key below ``predictions/<day>/``."""
    now = now or datetime.now(UTC)
    return f"{PREFIX}/{day:%Y-%m-%d}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}.jsonl"


def write_records(storage: Storage, records: Sequence[dict[str, Any]]) -> list[str]:
    """Write records as JSON lines, one new object per UTC day; return the keys written."""
    by_day: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_day.setdefault(rec["created_at"][:10], []).append(rec)
    keys = []
    for day, recs in sorted(by_day.items()):
        key = log_key(date.fromisoformat(day))
        storage.create(key, b"".join(orjson.dumps(r) + b"\n" for r in recs))
        keys.append(key)
    return keys


class PredictionLogger:
    """Queue served predictions and write them to the storage in batches.

    Thread-safety: :meth:`submit` and :meth:`run` belong to the serving event loop;
    :meth:`flush` may run in a worker thread once the loop no longer submits (shutdown).

    Args:
        storage: Where the log goes.
        batch_size: Flush as soon as this many predictions are queued.
        flush_seconds: Flush at least this often when anything is queued.
        max_queue: Keep at most this many unwritten predictions (oldest dropped beyond it,
            e.g. during a long storage outage).
        max_text_chars: Stored title/description length cap.
        on_error: Called with ``(n_predictions, exception)`` when a write fails.
        on_dropped: Called with the number of predictions dropped because the queue was full.
        on_written: Called with the number of predictions written.
    """

    ENCODE_CHUNK = 100
    """Predictions turned into records per step of :meth:`run` before it yields to requests."""

    def __init__(
        self,
        storage: Storage,
        *,
        batch_size: int = 500,
        flush_seconds: float = 2.0,
        max_queue: int = 200_000,
        max_text_chars: int | None = None,
        on_error: Callable[[int, Exception], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.storage = storage
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self.max_text_chars = max_text_chars
        self.on_error = on_error
        self.on_dropped = on_dropped
        self.on_written = on_written
        self._queue: deque[Served] = deque()
        self._created_at = functools.lru_cache(maxsize=256)(_created_at)
        self._pending: list[dict[str, Any]] = []  # encoded but not yet written (retry)
        self._write_lock = threading.Lock()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._stopping = False

    @property
    def queued(self) -> int:
        """Predictions not written yet."""
        return len(self._queue) + len(self._pending)

    def submit(self, items: Sequence[Served]) -> None:
        """Queue served predictions (cheap; call from the request path)."""
        self._queue.extend(items)
        overflow = len(self._queue) - self.max_queue
        if overflow > 0:
            for _ in range(overflow):
                self._queue.popleft()
            if self.on_dropped:
                self.on_dropped(overflow)
        wake = self._wake
        if len(self._queue) >= self.batch_size and wake is not None and not wake.is_set():
            if threading.get_ident() == self._loop_thread:
                wake.set()
            elif self._loop is not None:
                self._loop.call_soon_threadsafe(wake.set)

    def _encode(self, limit: int | None = None) -> int:
        """Turn up to ``limit`` queued predictions into records (all when None)."""
        created_at = self._created_at
        n = 0
        queue, pending = self._queue, self._pending
        while limit is None or n < limit:
            try:
                item = queue.popleft()
            except IndexError:  # empty (a shutdown flush may race the background task)
                break
            n += 1
            try:
                pending.append(to_record(item, self.max_text_chars, created_at))
            except (TypeError, ValueError) as exc:  # one bad prediction must not stop the log
                logger.warning("prediction log: cannot record a prediction: %s", exc)
                if self.on_error:
                    self.on_error(1, exc)
        return n

    def _write_pending(self) -> int:
        """Write the encoded records (blocking); 0 and kept for a retry when it fails."""
        with self._write_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                write_records(self.storage, batch)
            except Exception as exc:
                logger.warning("prediction log write of %d predictions failed: %s", len(batch), exc)
                if self.on_error:
                    self.on_error(len(batch), exc)
                self._pending[:0] = batch  # before anything encoded meanwhile
                overflow = len(self._pending) - self.max_queue
                if overflow > 0:
                    del self._pending[:overflow]
                    if self.on_dropped:
                        self.on_dropped(overflow)
                return 0
            if self.on_written:
                self.on_written(len(batch))
            return len(batch)

    def flush(self) -> int:
        """Write everything queued now (blocking); return how many predictions were written.

        A failed write keeps the predictions for the next flush and calls ``on_error``.
        """
        self._encode()
        return self._write_pending()

    async def run(self) -> None:
        """Flush in the background until cancelled; the caller flushes once more at shutdown.

        Records are built on the event loop in small chunks (it is Python work: in a thread it
        would only fight the loop for the GIL, and every hand-over costs the loop up to the
        interpreter's switch interval); only the storage write runs in a thread.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        backoff = self.flush_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            self._wake.clear()
            if not self.queued:
                continue
            while self._queue:
                self._encode(self.ENCODE_CHUNK)
                await asyncio.sleep(0)  # let requests in between chunks
            before = self.queued
            written = await asyncio.to_thread(self._write_pending)
            failed = written == 0 and before > 0 and self.queued > 0
            backoff = min(backoff * 2, 60.0) if failed else self.flush_seconds


def _as_utc(value: date | datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_prediction_log(
    storage: Storage, since: date | datetime | str | None = None
) -> pd.DataFrame:
    """Read the served-prediction log back.

    Args:
        storage: Where the log is.
        since: Only predictions at or after this day/time (UTC when naive); all when None.

    Returns:
        A frame with :data:`LOG_COLUMNS` (``probabilities`` holds dicts), oldest first.
        Unreadable lines are skipped with a warning.
    """
    import pandas as pd

    start = _as_utc(since) if since is not None else None
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for key in storage.list(PREFIX + "/"):
        parts = key.split("/")
        if len(parts) < 3 or not key.endswith((".jsonl", ".json")):
            continue
        try:
            day = date.fromisoformat(parts[-2])
        except ValueError:
            continue
        if start is not None and day < start.date():
            continue
        for n, line in enumerate(storage.read_bytes(key).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                logger.warning("skipping unreadable line %d of %s", n, storage.uri(key))
                continue
            if start is not None:
                try:
                    if _as_utc(str(rec.get("created_at"))) < start:
                        continue
                except ValueError:
                    continue
            rows.append(rec)
    frame = pd.DataFrame(rows, columns=list(LOG_COLUMNS))
    if not frame.empty:
        frame = frame.sort_values("created_at", kind="stable").reset_index(drop=True)
    logger.debug("read %d predictions in %.2fs", len(frame), time.perf_counter() - started)
    return frame
