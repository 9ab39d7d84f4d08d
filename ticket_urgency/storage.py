"""Object storage for datasets, reports and prediction logs: a local directory or GCS.

Both implementations share one small interface, :class:`Storage`. Keys are ``/``-separated
paths below the storage root (``datasets/tickets.csv``). Every write is atomic: readers see
the old object or the new one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from filelock import FileLock

if TYPE_CHECKING:
    from google.cloud.storage import Client

    from ticket_urgency.settings import Settings


class StorageError(RuntimeError):
    """A storage operation failed (I/O error, outage, permission)."""


class AlreadyExistsError(StorageError):
    """A write-once object already exists."""


class ConflictError(StorageError):
    """An object changed between read and write (a concurrent writer won)."""


@runtime_checkable
class Storage(Protocol):
    """The storage interface the rest of the project uses."""

    root_uri: str

    def uri(self, key: str) -> str:
        """Return the full URI (path or gs://) of ``key``."""
        ...

    def exists(self, key: str) -> bool:
        """Return whether ``key`` exists."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """Return the content of ``key``; raise FileNotFoundError when absent."""
        ...

    def read_versioned(self, key: str) -> tuple[bytes | None, str]:
        """Return ``(content or None, token)``; the token identifies this version."""
        ...

    def write_bytes(self, key: str, data: bytes, *, if_token: str | None = None) -> None:
        """Write ``key`` atomically; with ``if_token`` only if it is still that version."""
        ...

    def create(self, key: str, data: bytes) -> None:
        """Create ``key`` atomically; raise AlreadyExistsError if it exists."""
        ...

    def delete(self, key: str) -> None:
        """Delete ``key`` if it exists."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Return the keys below ``prefix``, sorted."""
        ...

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Return a context manager serialising writers of ``name`` (a no-op on GCS)."""
        ...


ABSENT = "absent"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def update_object(
    storage: Storage,
    key: str,
    fn: Callable[[bytes | None], bytes],
    *,
    retries: int = 10,
) -> bytes:
    """Read-modify-write ``key`` without losing a concurrent writer's change.

    Locally the update runs under a file lock; on GCS it is a compare-and-swap on the object's
    generation, retried when another writer got there first.

    Args:
        storage: Where the object lives.
        key: Object key.
        fn: Maps the current content (None when absent) to the new content.
        retries: How many conflicts to absorb before giving up.

    Returns:
        The content written.

    Raises:
        ConflictError: When every attempt lost a race.
    """
    with storage.lock(key):
        for attempt in range(retries):
            current, token = storage.read_versioned(key)
            new = fn(current)
            try:
                storage.write_bytes(key, new, if_token=token)
                return new
            except ConflictError:
                time.sleep(min(0.05 * 2**attempt, 1.0))
    raise ConflictError(f"{storage.uri(key)} kept changing; gave up after {retries} attempts")


class LocalStorage:
    """Storage in a local directory; atomic writes by temp file + rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)

    def _path(self, key: str) -> Path:
        key = key.strip("/")
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise ValueError(f"storage key {key!r} escapes the storage root")
        return path

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    @staticmethod
    def _token(path: Path) -> str:
        try:
            st = path.stat()
        except FileNotFoundError:
            return ABSENT
        return f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"

    def read_versioned(self, key: str) -> tuple[bytes | None, str]:
        path = self._path(key)
        try:
            with path.open("rb") as fh:
                token = f"{os.fstat(fh.fileno()).st_mtime_ns}-{os.fstat(fh.fileno()).st_size}"
                token += f"-{os.fstat(fh.fileno()).st_ino}"
                return fh.read(), token
        except FileNotFoundError:
            return None, ABSENT

    def _tmp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def write_bytes(self, key: str, data: bytes, *, if_token: str | None = None) -> None:
        path = self._path(key)
        tmp = self._tmp(path, data)
        try:
            if if_token is not None and self._token(path) != if_token:
                raise ConflictError(f"{path} changed since it was read")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def create(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._tmp(path, data)
        try:
            os.link(tmp, path)  # atomic create-if-absent
        except FileExistsError as exc:
            raise AlreadyExistsError(f"{path} already exists") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix.strip("/") else self.root
        if base.is_file():
            return [prefix.strip("/")]
        if not base.is_dir():
            return []
        rels = (p.relative_to(self.root) for p in base.rglob("*") if p.is_file())
        # hidden files and folders (temporary files, .locks/) are not stored objects
        keys = [r.as_posix() for r in rels if not any(x.startswith(".") for x in r.parts)]
        return sorted(keys)

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        lock_dir = self.root / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        return _filelock(lock_dir / (name.strip("/").replace("/", "__") + ".lock"))


@contextlib.contextmanager
def _filelock(path: Path) -> Iterator[None]:
    with FileLock(str(path), timeout=120):
        yield


class GCSStorage:
    """Storage in a Google Cloud Storage bucket (optionally below a prefix).

    Uploads are single-object writes, so an object is either the old or the new version.
    Write-once and compare-and-swap use generation preconditions; because the local emulator
    ignores preconditions, the generation is also checked explicitly before each write.
    :meth:`lock` is a no-op: updates are compare-and-swaps on the generation
    (:func:`update_object`), and derived objects are checked against their inputs' digests.
    """

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Client, retry_deadline: float = 30.0
    ) -> None:
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.client = client
        self._retry = DEFAULT_RETRY.with_deadline(retry_deadline)
        self._timeout = min(retry_deadline, 60.0)
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.bucket = client.bucket(bucket)
        self.root_uri = f"gs://{bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def _name(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(key)}"

    def _call(self, what: str, key: str, fn: Callable[[], Any]) -> Any:
        from google.api_core import exceptions as gexc

        try:
            return fn()
        except gexc.NotFound as exc:
            raise FileNotFoundError(f"{self.uri(key)} does not exist") from exc
        except gexc.PreconditionFailed as exc:
            raise ConflictError(f"{self.uri(key)} changed since it was read") from exc
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise StorageError(f"could not {what} {self.uri(key)}: {exc}") from exc
        except Exception as exc:  # requests/urllib3 connection errors have no common base
            if type(exc).__module__.split(".")[0] in {"requests", "urllib3", "google"}:
                raise StorageError(f"could not {what} {self.uri(key)}: {exc}") from exc
            raise

    def _generation(self, key: str) -> int:
        blob = self._call(
            "stat",
            key,
            lambda: self.bucket.get_blob(self._name(key), retry=self._retry, timeout=self._timeout),
        )
        return 0 if blob is None else int(blob.generation)

    def exists(self, key: str) -> bool:
        return self._generation(key) != 0

    def read_bytes(self, key: str) -> bytes:
        data: bytes = self._call(
            "read",
            key,
            lambda: self.bucket.blob(self._name(key)).download_as_bytes(
                retry=self._retry, timeout=self._timeout
            ),
        )
        return data

    def read_versioned(self, key: str) -> tuple[bytes | None, str]:
        blob = self._call(
            "stat",
            key,
            lambda: self.bucket.get_blob(self._name(key), retry=self._retry, timeout=self._timeout),
        )
        if blob is None:
            return None, "0"
        gen = int(blob.generation)
        try:
            data = self._call(
                "read",
                key,
                lambda: blob.download_as_bytes(
                    if_generation_match=gen, retry=self._retry, timeout=self._timeout
                ),
            )
        except (FileNotFoundError, ConflictError) as exc:
            raise ConflictError(f"{self.uri(key)} changed while it was read") from exc
        return data, str(gen)

    def _upload(self, key: str, data: bytes, generation: int | None) -> None:
        blob = self.bucket.blob(self._name(key))
        content_type = _content_type(key)
        self._call(
            "write",
            key,
            lambda: blob.upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=generation,
                retry=self._retry,
                timeout=self._timeout,
            ),
        )

    def write_bytes(self, key: str, data: bytes, *, if_token: str | None = None) -> None:
        generation = None
        if if_token is not None:
            generation = int(if_token) if if_token != ABSENT else 0
            if self._generation(key) != generation:  # explicit check: emulators ignore it
                raise ConflictError(f"{self.uri(key)} changed since it was read")
        self._upload(key, data, generation)

    def create(self, key: str, data: bytes) -> None:
        if self._generation(key) != 0:
            raise AlreadyExistsError(f"{self.uri(key)} already exists")
        try:
            self._upload(key, data, 0)
        except ConflictError as exc:
            raise AlreadyExistsError(f"{self.uri(key)} already exists") from exc

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._call(
                "delete",
                key,
                lambda: self.bucket.blob(self._name(key)).delete(
                    retry=self._retry, timeout=self._timeout
                ),
            )

    def list(self, prefix: str = "") -> list[str]:
        full = self._name(prefix) if prefix.strip("/") else (self.prefix and self.prefix + "/")
        blobs = self._call(
            "list",
            prefix,
            lambda: list(
                self.client.list_blobs(
                    self.bucket_name, prefix=full, retry=self._retry, timeout=self._timeout
                )
            ),
        )
        cut = len(self.prefix) + 1 if self.prefix else 0
        keys = (b.name[cut:] for b in blobs)
        # like local storage: hidden names are not stored objects
        return sorted(k for k in keys if not any(x.startswith(".") for x in k.split("/")))

    def lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def _content_type(key: str) -> str:
    if key.endswith(".csv"):
        return "text/csv"
    if key.endswith(".json"):
        return "application/json"
    if key.endswith(".html"):
        return "text/html"
    return "application/octet-stream"


def make_gcs_client(settings: Settings) -> Client:
    """Build a google-cloud-storage client; anonymous when an emulator host is configured."""
    from google.cloud import storage

    if settings.storage_emulator_host:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=settings.gcp_project or "test",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": settings.storage_emulator_host},
        )
    return storage.Client(project=settings.gcp_project)


def split_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/prefix`` into ``(bucket, prefix)``."""
    rest = uri.removeprefix("gs://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, prefix.strip("/")


def open_storage(
    root: str, settings: Settings | None = None, client: Client | None = None
) -> Storage:
    """Open the storage at ``root`` (a directory path or ``gs://bucket[/prefix]``).

    Args:
        root: Local directory or gs:// URI.
        settings: Used to build the GCS client (emulator host, project).
        client: An existing GCS client to use instead.

    Returns:
        A :class:`LocalStorage` or :class:`GCSStorage`.
    """
    if root.startswith("gs://"):
        bucket, prefix = split_gs_uri(root)
        if settings is None:
            from ticket_urgency.settings import Settings

            settings = Settings()
        if client is None:
            client = make_gcs_client(settings)
        return GCSStorage(bucket, prefix, client=client, retry_deadline=settings.gcs_retry_seconds)
    if "://" in root and not root.startswith("file://"):
        raise ValueError(f"unsupported storage root {root!r}: use a directory or gs://bucket")
    return LocalStorage(root.removeprefix("file://"))
