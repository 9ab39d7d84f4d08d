"""Both storage implementations honour the same interface (local dir and the GCS emulator)."""

from __future__ import annotations

import threading
import time

import pytest

from ticket_urgency.storage import (
    AlreadyExistsError,
    ConflictError,
    LocalStorage,
    Storage,
    open_storage,
    split_gs_uri,
    update_object,
)


def test_write_read_list_delete(any_storage: Storage) -> None:
    any_storage.write_bytes("datasets/a.csv", b"one")
    any_storage.write_bytes("monitoring/r.json", b"{}")
    assert any_storage.read_bytes("datasets/a.csv") == b"one"
    assert any_storage.exists("datasets/a.csv")
    assert not any_storage.exists("datasets/missing.csv")
    assert any_storage.list("datasets") == ["datasets/a.csv"]
    assert any_storage.list() == ["datasets/a.csv", "monitoring/r.json"]
    any_storage.delete("datasets/a.csv")
    assert not any_storage.exists("datasets/a.csv")
    with pytest.raises(FileNotFoundError):
        any_storage.read_bytes("datasets/a.csv")


def test_create_is_write_once(any_storage: Storage) -> None:
    any_storage.create("datasets/tickets.csv", b"ref")
    with pytest.raises(AlreadyExistsError):
        any_storage.create("datasets/tickets.csv", b"other")
    assert any_storage.read_bytes("datasets/tickets.csv") == b"ref"


def test_conditional_write_detects_a_concurrent_change(any_storage: Storage) -> None:
    any_storage.write_bytes("k", b"v1")
    _, token = any_storage.read_versioned("k")
    any_storage.write_bytes("k", b"v2")
    with pytest.raises(ConflictError):
        any_storage.write_bytes("k", b"v3", if_token=token)
    assert any_storage.read_bytes("k") == b"v2"


def test_read_versioned_of_absent_key(any_storage: Storage) -> None:
    data, token = any_storage.read_versioned("nothing")
    assert data is None
    any_storage.write_bytes("nothing", b"now", if_token=token)
    assert any_storage.read_bytes("nothing") == b"now"


def test_update_object_loses_no_concurrent_increment(local_storage: LocalStorage) -> None:
    def bump(current: bytes | None) -> bytes:
        return str(int(current or b"0") + 1).encode()

    threads = [
        threading.Thread(
            target=lambda: [update_object(local_storage, "n", bump) for _ in range(10)]
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert local_storage.read_bytes("n") == b"40"


def test_local_lock_excludes_other_writers_and_is_released(local_storage: LocalStorage) -> None:
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    guard = threading.Lock()

    def critical(who: str) -> None:
        with local_storage.lock("datasets/combined.csv"):
            with guard:
                inside.append(who)
                if len(inside) > 1:
                    overlaps.append(tuple(inside))
            time.sleep(0.05)
            with guard:
                inside.remove(who)

    threads = [threading.Thread(target=critical, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    with pytest.raises(RuntimeError), local_storage.lock("datasets/combined.csv"):
        raise RuntimeError("the block failed")
    with local_storage.lock("datasets/combined.csv"):  # released on error: no wait
        pass


def test_hidden_names_are_not_listed(any_storage: Storage) -> None:
    any_storage.write_bytes("datasets/a.csv", b"one")
    any_storage.write_bytes(".locks/datasets__a.csv.lock", b"")
    any_storage.write_bytes("datasets/.partial.csv", b"")
    assert any_storage.list() == ["datasets/a.csv"]
    assert any_storage.list("datasets") == ["datasets/a.csv"]


def test_local_keys_cannot_escape_the_root(local_storage: LocalStorage) -> None:
    with pytest.raises(ValueError, match="escapes"):
        local_storage.write_bytes("../outside", b"x")


def test_local_writes_leave_no_temp_files(local_storage: LocalStorage) -> None:
    local_storage.write_bytes("d/a", b"x")
    local_storage.create("d/b", b"y")
    names = sorted(p.name for p in (local_storage.root / "d").iterdir())
    assert names == ["a", "b"]


def test_open_storage_dispatches_on_the_uri(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(open_storage(str(tmp_path)), LocalStorage)
    assert split_gs_uri("gs://bucket/some/prefix") == ("bucket", "some/prefix")
    with pytest.raises(ValueError, match="unsupported storage root"):
        open_storage("s3://bucket")


def test_gcs_prefix_is_respected(gcs_settings) -> None:  # type: ignore[no-untyped-def]
    storage = open_storage(gcs_settings.storage + "/team-a", gcs_settings)
    storage.write_bytes("datasets/x.csv", b"1")
    assert storage.uri("datasets/x.csv").endswith("/team-a/datasets/x.csv")
    assert storage.list() == ["datasets/x.csv"]
    root = open_storage(gcs_settings.storage, gcs_settings)
    assert root.list() == ["team-a/datasets/x.csv"]
