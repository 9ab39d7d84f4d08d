"""Adaptive micro-batching: concurrent requests share one model call in a worker thread.

Requests put their rows on a queue and await a future. One thread takes everything that is
queued (up to ``max_rows``), runs one ``predict_proba`` and resolves the futures with a single
callback per event loop. With one request in flight a batch is that request (no waiting);
under load batches grow by themselves, which amortises the per-call overhead. The model work
never runs on the event loop, so ``/health`` stays fast while ``/predict`` is saturated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
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
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


class MicroBatcher:
    """Run model calls for concurrent requests in one background thread, batched.

    Args:
        max_rows: Largest batch one model call takes (a bigger single request is one call).
        on_batch: Called with the number of rows of each model call (metrics).
    """

    def __init__(self, max_rows: int = 2048, on_batch: Callable[[int], None] | None = None):
        self.max_rows = max_rows
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish queued work and stop the worker thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    async def predict(self, model: LoadedModel, columns: Columns, rows: int) -> np.ndarray:
        """Return ``model``'s probabilities for ``columns`` (computed in the worker thread)."""
        if self._thread is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()
        self._queue.put(_Job(model, columns, rows, fut, loop))
        return await fut

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
            by_model: dict[int, list[_Job]] = {}
            for job in jobs:
                by_model.setdefault(id(job.model), []).append(job)
            for group in by_model.values():
                self._run_group(group, results)
            for loop, items in results.items():
                with contextlib.suppress(RuntimeError):  # loop closed at shutdown
                    loop.call_soon_threadsafe(_resolve, items)

    def _run_group(self, group: list[_Job], results: dict[Any, list[Any]]) -> None:
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
            for job in group:
                results.setdefault(job.loop, []).append((job.future, exc, False))
            return
        if self.on_batch:
            self.on_batch(total)
        start = 0
        for job in group:
            results.setdefault(job.loop, []).append(
                (job.future, proba[start : start + job.rows], True)
            )
            start += job.rows
