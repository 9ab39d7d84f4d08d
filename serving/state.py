"""The served model of one worker: load, atomic swap, coalesced reloads, worker sync, polling.

Several workers (``serve --workers N``) share a *reload marker*, a small file in a directory
that the ``serve`` command creates for the run (``settings.reload_marker``). A worker that
completes a reload rewrites the marker (atomically) with the version it now serves; every
worker checks the marker's ``stat`` every ``settings.worker_sync_seconds`` (cheap, off the
request path) and, when it changed and names another version, re-resolves the registry and
reloads itself. The registry stays the single source of truth; the marker only says "look now".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ticket_urgency import registry_prefetch
from ticket_urgency.predictor import (
    LoadedModel,
    ModelLoadError,
    ModelNotFoundError,
    ModelRef,
    load_model,
    make_client,
    resolve_model,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from serving.metrics import Metrics
    from ticket_urgency.settings import Settings

logger = logging.getLogger(__name__)


def public_version(version: str | None) -> int | str | None:
    """Registry versions are numbers; show them as such in JSON."""
    if version is None:
        return None
    return int(version) if version.isdigit() else version


@dataclass
class ReloadResult:
    """What a reload did."""

    status: str  # reloaded | unchanged | failed
    previous_version: str | None
    model_version: str | None
    model_loaded: bool
    reason: str | None = None
    http_status: int = 200

    def to_dict(self) -> dict[str, Any]:
        """The reply body of ``/reload-model``."""
        out: dict[str, Any] = {
            "status": self.status,
            "previous_version": public_version(self.previous_version),
            "model_version": public_version(self.model_version),
            "model_loaded": self.model_loaded,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


class ModelService:
    """Holds the served model of this worker and replaces it safely.

    ``model`` is only ever replaced by one assignment of a fully loaded, smoke-tested
    :class:`LoadedModel`, so a request sees either the old or the new model.

    Args:
        settings: Process settings (model URI, registry, marker).
        metrics: Where reloads and the served version are recorded.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model: LoadedModel | None = None
        self.last_error: str | None = None
        self._client: MlflowClient | None = None
        self._prefetched: registry_prefetch.Resolved | None = None
        self._inflight: asyncio.Task[ReloadResult] | None = None
        self._marker_seen: tuple[int, int, int] | None = None
        self.loads = 0  # completed loads (for tests and /model)
        self._client_lock = threading.Lock()

    # -- registry access (run in threads) ------------------------------------------------
    def _get_client(self) -> MlflowClient:
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.settings)
            return self._client

    async def warm_up(
        self, idle_seconds: Callable[[], float], quiet: float = 0.5, check: float = 0.25
    ) -> None:
        """Create the registry client in the background at the first quiet moment.

        ``serve`` resolves the first model in a child process, so the server's own client (and
        the SQLAlchemy store behind it, ~1.5 s of imports holding the GIL) would otherwise be
        created by the first reload or poll, under load. It is created once no prediction
        has been requested for ``quiet`` seconds (never while traffic is continuous: then the
        first reload pays it, as before).

        Args:
            idle_seconds: Seconds since the last prediction request.
            quiet: How long the API must have been idle.
            check: How often to look.
        """
        while self._client is None and idle_seconds() < quiet:
            await asyncio.sleep(check)
        if self._client is not None:
            return
        try:
            await asyncio.to_thread(self._get_client)
        except Exception as exc:  # the registry is down: the next reload reports it
            logger.warning("could not open the model registry yet: %s", exc)
            return
        # The client imported SQLAlchemy, alembic and MLflow's ORM after the model's freeze:
        # freeze those long-lived objects too, or every full collection scans them (~50 ms
        # pauses of the event loop under load, p99 65-80 ms instead of ~18 ms at 64 connections).
        gc.freeze()

    def resolve(self) -> ModelRef:
        """Resolve the configured model URI now (blocking).

        The first call in a ``serve --workers 1`` process takes the answer of the registry
        look-up that the command started in a child process
        (:mod:`ticket_urgency.registry_prefetch`).
        """
        prefetched = registry_prefetch.take(self.settings)
        if prefetched is not None:
            self._prefetched = prefetched
            return prefetched.ref
        return resolve_model(self._get_client(), self.settings.model_uri)

    def load(self, ref: ModelRef) -> LoadedModel:
        """Load and smoke-test ``ref`` (blocking)."""
        prefetched, self._prefetched = self._prefetched, None
        try:
            if prefetched is not None and prefetched.ref == ref:
                model = load_model(
                    self.settings, ref, location=prefetched.location, metrics=prefetched.metrics
                )
            else:
                model = load_model(self.settings, ref, self._get_client())
        finally:
            registry_prefetch.resume_gc()  # paused during start-up only (no-op afterwards)
        self.loads += 1
        return model

    # -- reload ---------------------------------------------------------------------------
    async def reload(self, trigger: str = "request") -> ReloadResult:
        """Re-resolve the model URI and swap in a new version if there is one.

        Concurrent calls share one reload. The loading happens in a worker thread; the old
        model keeps answering until the swap, and stays when anything fails.
        """
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._reload(trigger))
        result = await asyncio.shield(self._inflight)
        if trigger == "request" and result.status != "failed":
            self.write_marker(result.model_version)
        return result

    async def _reload(self, trigger: str) -> ReloadResult:
        previous = self.model
        prev_v = previous.version if previous else None
        started = time.perf_counter()
        try:
            ref = await asyncio.to_thread(self.resolve)
        except ModelNotFoundError as exc:
            return self._failed(prev_v, trigger, f"no model to load: {exc}", 503)
        except ValueError as exc:
            return self._failed(prev_v, trigger, f"bad model URI: {exc}", 503)
        except Exception as exc:
            return self._failed(prev_v, trigger, f"model registry unavailable: {exc}", 503)
        if previous is not None and previous.ref.name == ref.name and prev_v == ref.version:
            self.metrics.reloads.labels("unchanged", trigger).inc()
            return ReloadResult("unchanged", prev_v, prev_v, True)
        try:
            new = await asyncio.to_thread(self.load, ref)
        except ModelLoadError as exc:
            return self._failed(prev_v, trigger, str(exc), 502)
        except Exception as exc:
            return self._failed(prev_v, trigger, f"could not load {ref.version_uri}: {exc}", 502)
        self.model = new  # the atomic swap
        del previous  # the old model is freed when its last in-flight request ends
        # The model is hundreds of thousands of long-lived objects (vocabularies): move them
        # out of the cyclic GC's reach, or every full collection would scan them all and stall
        # the event loop for tens of milliseconds (visible as p99 latency under load).
        gc.freeze()
        self.last_error = None
        self.metrics.reloads.labels("reloaded", trigger).inc()
        self.metrics.model_version.set(float(ref.version) if ref.version.isdigit() else -1)
        self.metrics.model_loaded.set(1)
        logger.info(
            "serving %s (run %s; was %s) after %.2fs [%s]",
            ref.version_uri,
            ref.run_id,
            prev_v,
            time.perf_counter() - started,
            trigger,
        )
        if trigger != "request":
            self.write_marker(ref.version)
        return ReloadResult("reloaded", prev_v, ref.version, True)

    def _failed(self, prev_v: str | None, trigger: str, reason: str, code: int) -> ReloadResult:
        self.last_error = reason
        self.metrics.reloads.labels("failed", trigger).inc()
        logger.warning("model reload failed [%s]: %s", trigger, reason)
        return ReloadResult("failed", prev_v, prev_v, self.model is not None, reason, code)

    # -- several workers -----------------------------------------------------------------
    def _marker_stat(self) -> tuple[int, int, int] | None:
        if not self.settings.reload_marker:
            return None
        try:
            st = os.stat(self.settings.reload_marker)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def write_marker(self, version: str | None) -> None:
        """Tell the other workers of this ``serve`` to re-resolve (no-op with one worker)."""
        marker = self.settings.reload_marker
        if not marker or version is None:
            return
        path = Path(marker)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(
                orjson.dumps({"version": version, "pid": os.getpid(), "at": time.time()})
            )
            os.replace(tmp, path)
            self._marker_seen = self._marker_stat()
        except OSError as exc:
            logger.warning("could not write the reload marker %s: %s", marker, exc)

    def _desired_version(self) -> str | None:
        assert self.settings.reload_marker
        try:
            data = orjson.loads(Path(self.settings.reload_marker).read_bytes())
            return str(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def watch_marker(self) -> None:
        """Follow the reload marker until cancelled (started only when a marker is set)."""
        self._marker_seen = self._marker_stat()
        while True:
            await asyncio.sleep(self.settings.worker_sync_seconds)
            seen = self._marker_stat()
            if seen is None or seen == self._marker_seen:
                continue
            self._marker_seen = seen
            desired = self._desired_version()
            if self.model is None or desired != self.model.version:
                with contextlib.suppress(Exception):
                    await self.reload("worker-sync")

    async def poll(self) -> None:
        """Re-resolve the model URI every ``poll_seconds`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            with contextlib.suppress(Exception):
                await self.reload("poll")
