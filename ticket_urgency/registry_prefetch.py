"""Resolve the served model through the MLflow registry in a forked child during start-up.

Almost all of the cold start of ``ticket-urgency serve`` is imports, and they hold the GIL, so
a thread cannot overlap them. They split into two independent halves, though:

* the registry: a database store makes :class:`mlflow.MlflowClient` import SQLAlchemy, alembic
  and MLflow's ORM models and check the schema (~1.5 s) before it resolves the model URI;
* the server and the model: FastAPI, scikit-learn and SciPy (~2 s).

``serve --workers 1`` calls :func:`start` once ``mlflow`` is imported: the process forks, the
child resolves the configured model URI exactly as :class:`serving.state.ModelService` would
(:func:`~ticket_urgency.predictor.resolve_model`, the version's download URI and its run
metrics), sends the answer back through a pipe as JSON and exits, while the parent goes on to
import the server. The first reload of the server takes the answer (:func:`take`) and only has
to load the artifact. Nothing but the answer crosses the pipe; the served model is still loaded,
smoke-tested and swapped in by the server process. When the child fails for any reason, the
server resolves again in-process and reports the error as it always did.

:func:`take` imports scikit-learn before it waits for the answer, so that the child's work
overlaps the largest imports of the server process.

From :func:`start` until the first model is loaded (:func:`resume_gc`), the cyclic garbage
collector is paused: the imports and the model create about a million long-lived objects, and
the hundreds of collections they would trigger find almost no garbage (a few thousand objects)
yet cost ~10 % of the start-up CPU. No request is served before the first reload completes,
so no request runs without the collector.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ticket_urgency.predictor import ModelRef

if TYPE_CHECKING:
    from ticket_urgency.settings import Settings

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 300.0
"""How long the server waits for the child before it resolves in-process instead."""


@dataclass(frozen=True)
class Resolved:
    """What the child found: the version a model URI names, where its artifact is, its metrics.

    Attributes:
        key: The registry and model URI it was resolved for (see :func:`_key`).
        ref: The registry version.
        location: The version's artifact URI (``get_model_version_download_uri``).
        metrics: The metrics of the version's training run.
    """

    key: tuple[str, str, str]
    ref: ModelRef
    location: str
    metrics: Mapping[str, float]


def _key(settings: Settings) -> tuple[str, str, str]:
    return (
        settings.mlflow_tracking_uri,
        settings.mlflow_registry_uri or settings.mlflow_tracking_uri,
        settings.model_uri,
    )


class _Child:
    """A forked child resolving the model URI; the parent reads its answer once."""

    def __init__(self, pid: int, fd: int, key: tuple[str, str, str]) -> None:
        self.pid = pid
        self.fd: int | None = fd
        self.key = key
        self.lock = threading.Lock()

    def answer(self, timeout: float) -> Resolved | None:
        """Wait for the child's answer (None when it failed or took longer than ``timeout``)."""
        with self.lock:
            if self.fd is None:
                return None
            fd, self.fd = self.fd, None
            chunks: list[bytes] = []
            try:
                while select.select([fd], [], [], timeout)[0]:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
                else:
                    logger.warning(
                        "registry look-up did not answer within %.0fs; resolving again", timeout
                    )
                    self._kill()
                    return None
            finally:
                os.close(fd)
                self._reap()
            return _decode(b"".join(chunks), self.key)

    def close(self) -> None:
        """Stop the child if its answer was never read."""
        with self.lock:
            if self.fd is None:
                return
            os.close(self.fd)
            self.fd = None
            self._kill()
            self._reap()

    def _kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return

    def _reap(self) -> None:
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            return


_pending: _Child | None = None
_pending_lock = threading.Lock()
_gc_paused = False


def _pause_gc() -> None:
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def resume_gc() -> None:
    """Resume the garbage collector paused by :func:`start` (no-op when it is not paused)."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.enable()


def start(settings: Settings) -> bool:
    """Fork a child that resolves ``settings.model_uri`` now (see the module docstring).

    Call it from a process without other threads (the ``serve`` command, before uvicorn
    starts). Imports ``mlflow`` first, so that the child does not import it again.

    Args:
        settings: The settings the server will run with.

    Returns:
        True when a child was started; False where ``fork`` is unsafe or unavailable (not
        Linux, other threads running) or a child is already pending.
    """
    global _pending
    if sys.platform != "linux" or threading.active_count() > 1:
        return False
    with _pending_lock:
        if _pending is not None:
            return False
        _pause_gc()
        try:
            import mlflow  # noqa: F401  (both processes need it: import it once, before the fork)

            if threading.active_count() > 1:  # a thread started by an import: do not fork
                resume_gc()
                return False
            key = _key(settings)
            read_fd, write_fd = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
        except BaseException:
            resume_gc()
            raise
        if pid == 0:  # the child never returns
            os.close(read_fd)
            _run_child(settings, write_fd, key)
        os.close(write_fd)
        _pending = _Child(pid, read_fd, key)
    return True


def _run_child(settings: Settings, fd: int, key: tuple[str, str, str]) -> None:
    code = 1
    try:
        from ticket_urgency.predictor import make_client, resolve_model, run_metrics

        client = make_client(settings)
        ref = resolve_model(client, settings.model_uri)
        location = client.get_model_version_download_uri(ref.name, ref.version)
        answer = {
            "key": list(key),
            "ref": asdict(ref),
            "location": str(location),
            "metrics": run_metrics(client, ref.run_id),
        }
        data = json.dumps(answer).encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
        code = 0
    except BaseException as exc:  # the server resolves again in-process and reports it
        logger.debug("registry look-up in the start-up child failed: %r", exc)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _decode(data: bytes, key: tuple[str, str, str]) -> Resolved | None:
    if not data:
        return None
    try:
        obj: dict[str, Any] = json.loads(data)
        got = tuple(str(k) for k in obj["key"])
        if got != key:
            return None
        return Resolved(
            key=key,
            ref=ModelRef(**obj["ref"]),
            location=str(obj["location"]),
            metrics={str(k): float(v) for k, v in obj["metrics"].items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("ignoring an unreadable answer of the registry look-up: %r", exc)
        return None


def take(settings: Settings, timeout: float = TIMEOUT_SECONDS) -> Resolved | None:
    """Return the started look-up's answer for ``settings`` once (None when there is none).

    Blocks until the child answers. The answer is used only when it was resolved for the same
    tracking URI, registry URI and model URI as ``settings``. With an answer the collector stays
    paused: call :func:`resume_gc` once that version is loaded.
    """
    global _pending
    with _pending_lock:
        child, _pending = _pending, None
    if child is None:
        return None
    found: Resolved | None = None
    try:
        # While the child works, import what loading the artifact needs: mlflow's sklearn
        # flavour and scikit-learn's core (with SciPy, most of the load time).
        import mlflow.sklearn  # noqa: F401
        import sklearn.pipeline  # noqa: F401

        found = child.answer(timeout)
        if found is not None and found.key != _key(settings):
            found = None
    finally:
        if found is None:
            resume_gc()
    return found


def discard() -> None:
    """Stop a look-up whose answer was never taken (the server failed to start)."""
    global _pending
    with _pending_lock:
        child, _pending = _pending, None
    if child is not None:
        child.close()
    resume_gc()
