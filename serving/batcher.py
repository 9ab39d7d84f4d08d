"""Adaptive micro-batching: concurrent requests share one model call.

Small requests (``/predict``, small batches) are batched **on the event loop**: a request
appends its rows to a pending list and awaits a future; the first one schedules a flush with
``loop.call_soon``, which runs after every request that the loop's current iteration has
parsed. The flush makes one ``predict_proba`` call for all of them and resolves the futures.
Under load the batches grow by themselves (one per loop iteration); with one request in flight
the batch is that request, with no waiting.

Why on the loop and not in a thread: the model work is Python (text cleaning, n-grams), so a
thread only competes with the event loop for the GIL. Every hand-over costs a context switch,
and a busy loop makes a waiting thread wait for the interpreter's switch interval (5 ms) each
time it needs the GIL back. A flush of a few dozen tickets takes a few milliseconds, which
bounds how long ``/health`` waits behind it.

Large requests (more than ``inline_rows`` rows, e.g. ``/predict/batch`` with 1,000 tickets)
run in one background thread instead, so that one big batch never stalls the loop for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ticket_urgency.contract import FEATURE_COLUMNS
from ticket_urgency.predictor import Columns, LoadedModel

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    model: LoadedModel
    columns: Columns
    rows: int
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop


def _resolve(results: list[tuple[asyncio.Future[np.ndarray], Any, bool]]) -> None:
    for fut, value, ok in results:
        if fut.done():  # cancelled (client went away)
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


def _score(
    jobs: list[_Job], on_batch: Callable[[int], None] | None
) -> list[tuple[_Job, Any, bool]]:
    """One model call per model for ``jobs``; the result (or error) of every job."""
    out: list[tuple[_Job, Any, bool]] = []
    by_model: dict[int, list[_Job]] = {}
    for job in jobs:
        by_model.setdefault(id(job.model), []).append(job)
    for group in by_model.values():
        model = group[0].model
        if len(group) == 1:
            columns = group[0].columns
        else:
            columns = {c: [v for job in group for v in job.columns[c]] for c in FEATURE_COLUMNS}
        total = sum(job.rows for job in group)
        try:
            proba = model.predict_proba(columns)
        except Exception as exc:
            logger.exception("model call on %d rows failed", total)
            out.extend((job, exc, False) for job in group)
            continue
        if on_batch:
            on_batch(total)
        start = 0
        for job in group:
            out.append((job, proba[start : start + job.rows], True))
            start += job.rows
    return out


class MicroBatcher:
    """Batch the model calls of concurrent requests (on the loop, or in a thread when large).

    Args:
        max_rows: Largest batch one threaded model call takes (a bigger request is one call).
        inline_rows: Requests of at most this many rows are batched on the event loop.
        on_batch: Called with the number of rows of each model call (metrics).
    """

    def __init__(
        self,
        max_rows: int = 2048,
        inline_rows: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.max_rows = max_rows
        self.inline_rows = inline_rows
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending: list[_Job] = []
        self._flush_scheduled = False
        self._last_request = time.monotonic()

    def start(self) -> None:
        """Start the worker thread (for large requests)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued work and stop the worker thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def idle_seconds(self) -> float:
        """Seconds since the last prediction request (or since the batcher was created)."""
        return time.monotonic() - self._last_request

    async def predict(self, model: LoadedModel, columns: Columns, rows: int) -> np.ndarray:
        """Return ``model``'s probabilities for ``columns`` (batched with concurrent calls)."""
        if self._thread is None:
            raise RuntimeError("the batcher is not running")
        self._last_request = time.monotonic()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        job = _Job(model, columns, rows, fut, loop)
        if rows > self.inline_rows:
            self._queue.put(job)
        else:
            self._pending.append(job)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
        return await fut

    def _flush(self) -> None:
        """Score everything pending on the loop (runs after the requests parsed so far)."""
        jobs, self._pending = self._pending, []
        self._flush_scheduled = False
        _resolve([(job.future, value, ok) for job, value, ok in _score(jobs, self.on_batch)])

    def _take(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs = [first]
        rows = first.rows
        while rows < self.max_rows:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            rows += job.rows
        return jobs, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._take(first)
            results: dict[asyncio.AbstractEventLoop, list[Any]] = {}
            for job, value, ok in _score(jobs, self.on_batch):
                results.setdefault(job.loop, []).append((job.future, value, ok))
            for loop, items in results.items():
                with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                    loop.call_soon_threadsafe(_resolve, items)
