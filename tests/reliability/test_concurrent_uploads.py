"""Concurrent uploads of new data lose no rows.

Local storage: several processes and threads merge at once; ``update_object`` serialises them
with a file lock. GCS: ``update_object`` is a compare-and-swap on the object generation. The
emulator ignores ``if_generation_match``, so the logic runs against a fake google-cloud-storage
client that enforces it and makes every writer read before any of them writes (the worst
interleaving). A control run with preconditions switched off shows the fake does lose updates,
so the test can fail.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from data_support import REFERENCE_CSV
from google.api_core.exceptions import NotFound, PreconditionFailed

from ticket_urgency.contract import parse_tickets, to_csv_bytes
from ticket_urgency.datasets import (
    NEW_KEY,
    append_new,
    combined_state,
    ensure_combined,
    upload,
)
from ticket_urgency.storage import ConflictError, GCSStorage, LocalStorage, Storage

pytestmark = pytest.mark.reliability
WRITERS = 4
ROWS_EACH = 15


def batch(writer: int, rows: int = ROWS_EACH, label: str = "") -> pd.DataFrame:
    """Tickets with ids unique to ``writer``."""
    data = pd.DataFrame(
        {
            "ticket_id": [f"w{writer}-{i}" for i in range(rows)],
            "title": [f"Ticket {i} from writer {writer}" for i in range(rows)],
            "description": ["Something broke"] * rows,
            "source": ["web"] * rows,
            "customer_tier": ["Gold"] * rows,
            "label_urgency": [label or ("high" if i % 2 else "") for i in range(rows)],
        }
    )
    return parse_tickets(to_csv_bytes(data), f"writer-{writer}.csv")


def stored_ids(storage: Storage) -> list[str]:
    return parse_tickets(storage.read_bytes(NEW_KEY), "new")["ticket_id"].tolist()


def _process_writer(root: str, writer: int, rounds: int) -> None:
    storage = LocalStorage(root)
    for r in range(rounds):
        append_new(storage, batch(writer * 100 + r), set())


def test_local_processes_lose_no_rows(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_process_writer, args=(root, w, 3)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    ids = stored_ids(LocalStorage(root))
    assert len(ids) == len(set(ids)) == WRITERS * 3 * ROWS_EACH


def test_local_threaded_uploads_lose_no_rows_and_combined_is_fresh(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    reference = parse_tickets(REFERENCE_CSV, "ref.csv", labels="required")
    upload(storage, reference, None)
    with ThreadPoolExecutor(WRITERS) as pool:
        reports = list(pool.map(lambda w: upload(storage, reference, batch(w)), range(WRITERS)))
    assert sum(r.added for r in reports) == WRITERS * ROWS_EACH
    assert len(set(stored_ids(storage))) == WRITERS * ROWS_EACH
    assert combined_state(storage).fresh
    # late labels for everyone, concurrently: replaced in place, nothing added or lost
    with ThreadPoolExecutor(WRITERS) as pool:
        reports = list(
            pool.map(lambda w: upload(storage, None, batch(w, label="low")), range(WRITERS))
        )
    assert sum(r.added for r in reports) == 0
    new = parse_tickets(storage.read_bytes(NEW_KEY), "new")
    assert len(new) == WRITERS * ROWS_EACH and (new["label_urgency"] == "low").all()
    combined, _ = ensure_combined(storage)
    assert len(combined) == len(reference) + WRITERS * ROWS_EACH


# ------------------------------------------------------------------ fake GCS with generations
class FakeBlob:
    def __init__(self, bucket: FakeBucket, name: str, generation: int = 0) -> None:
        self.bucket, self.name, self.generation = bucket, name, generation

    def download_as_bytes(self, if_generation_match: int | None = None, **_: Any) -> bytes:
        with self.bucket.mutex:
            gen, data = self.bucket.objects.get(self.name, (0, b""))
            if gen == 0:
                raise NotFound(self.name)
            if if_generation_match is not None and gen != if_generation_match:
                raise PreconditionFailed(self.name)
            return data

    def upload_from_string(
        self, data: bytes, content_type: str = "", if_generation_match: int | None = None, **_: Any
    ) -> None:
        self.bucket.before_write()
        with self.bucket.mutex:
            gen = self.bucket.objects.get(self.name, (0, b""))[0]
            enforce = self.bucket.enforce_preconditions
            if enforce and if_generation_match is not None and gen != if_generation_match:
                self.bucket.rejected += 1
                raise PreconditionFailed(f"{self.name}: generation {gen} != {if_generation_match}")
            self.bucket.counter += 1
            self.bucket.objects[self.name] = (self.bucket.counter, bytes(data))

    def delete(self, **_: Any) -> None:
        with self.bucket.mutex:
            if self.bucket.objects.pop(self.name, None) is None:
                raise NotFound(self.name)


class FakeBucket:
    """Objects with generations; ``before_write`` lets a test interleave writers."""

    def __init__(self, name: str, enforce_preconditions: bool = True) -> None:
        self.name = name
        self.objects: dict[str, tuple[int, bytes]] = {}
        self.mutex = threading.Lock()
        self.counter = 0
        self.rejected = 0
        self.enforce_preconditions = enforce_preconditions
        self.barrier: threading.Barrier | None = None

    def before_write(self) -> None:
        barrier = self.barrier
        if barrier is not None:  # one round: every writer has read and checked, then all write
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)
            self.barrier = None

    def blob(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)

    def get_blob(self, name: str, **_: Any) -> FakeBlob | None:
        with self.mutex:
            gen = self.objects.get(name, (0, b""))[0]
        return FakeBlob(self, name, gen) if gen else None


class FakeClient:
    def __init__(self, bucket: FakeBucket) -> None:
        self._bucket = bucket

    def bucket(self, name: str) -> FakeBucket:
        return self._bucket

    def list_blobs(self, bucket_name: str, prefix: str = "", **_: Any) -> list[FakeBlob]:
        with self._bucket.mutex:
            names = [n for n in self._bucket.objects if n.startswith(prefix or "")]
        return [FakeBlob(self._bucket, n, self._bucket.objects[n][0]) for n in sorted(names)]


def _racing_appends(enforce: bool) -> tuple[GCSStorage, FakeBucket, list[BaseException]]:
    bucket = FakeBucket("fake", enforce_preconditions=enforce)
    storage = GCSStorage("fake", "", client=FakeClient(bucket), retry_deadline=1)  # type: ignore[arg-type]
    append_new(storage, batch(99), set())  # the object exists: every writer reads a version
    bucket.barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            append_new(storage, batch(w), set())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
            if bucket.barrier is not None:
                bucket.barrier.abort()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return storage, bucket, errors


def test_gcs_compare_and_swap_loses_no_rows_under_worst_interleaving() -> None:
    storage, bucket, errors = _racing_appends(enforce=True)
    assert errors == []
    ids = stored_ids(storage)
    assert len(ids) == len(set(ids)) == (WRITERS + 1) * ROWS_EACH
    # the explicit generation check passed for all (they read the same version), so the
    # server-side precondition is what rejected the losers, who then re-read and retried
    assert bucket.rejected >= WRITERS - 1


def test_control_without_preconditions_the_race_loses_rows() -> None:
    """What the emulator does (no precondition checks): the same race loses updates."""
    storage, _, errors = _racing_appends(enforce=False)
    assert errors == []
    assert len(set(stored_ids(storage))) < (WRITERS + 1) * ROWS_EACH


def test_compare_and_swap_gives_up_with_conflict_error_after_retries() -> None:
    """A writer that always loses gets a clear ConflictError, and writes nothing."""
    bucket = FakeBucket("fake")
    storage = GCSStorage("fake", "", client=FakeClient(bucket), retry_deadline=1)  # type: ignore[arg-type]
    storage.write_bytes("k", b"v1")

    def always_behind(current: bytes | None) -> bytes:
        storage.write_bytes("k", (current or b"") + b"+other")  # someone else wins each time
        return b"mine"

    from ticket_urgency.storage import update_object

    with pytest.raises(ConflictError, match="kept changing"):
        update_object(storage, "k", always_behind, retries=3)
    assert storage.read_bytes("k") == b"v1+other+other+other"


def test_gcs_reference_is_created_once_under_racing_creators() -> None:
    """Two writers that both see no reference: exactly one create wins, the other is told."""
    from ticket_urgency.storage import AlreadyExistsError

    bucket = FakeBucket("fake")
    storage = GCSStorage("fake", "", client=FakeClient(bucket), retry_deadline=1)  # type: ignore[arg-type]
    bucket.barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create(data: bytes) -> None:
        try:
            storage.create("datasets/tickets.csv", data)
            outcomes.append("created")
        except AlreadyExistsError:
            outcomes.append("exists")

    threads = [threading.Thread(target=create, args=(d,)) for d in (b"a", b"b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["created", "exists"]
    assert bucket.objects["datasets/tickets.csv"][0] == 1  # written once, never overwritten
