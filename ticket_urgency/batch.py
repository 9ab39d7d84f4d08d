"""Batch scoring: a ticket CSV in, the same rows with the model's answer out.

The model comes from the configured registry (``--model-uri``, default
``settings.model_uri`` = the Production version), resolved to one exact version and loaded
through :mod:`ticket_urgency.predictor`, the same code (and fast path) that serving uses, so a
batch answer equals the API's answer for the same ticket. The input is validated against the
data contract first (a bad file is rejected before anything is written), then scored in chunks;
the output is written to a temporary file next to the destination and renamed into place.
Input and output are local paths or ``gs://bucket/path.csv`` objects (a ``gs://`` output is
uploaded as one object once it is complete).

Output columns: every input column, then ``prediction``, ``confidence``, ``needs_review``
(confidence below ``settings.review_threshold``, as in ``/predict``) and ``model_version``
(existing columns with those names are overwritten).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pandas as pd

from ticket_urgency.contract import FEATURE_COLUMNS, ID_COLUMN, LABEL_COLUMN, parse_tickets
from ticket_urgency.errors import UserFacingError

if TYPE_CHECKING:
    from ticket_urgency.predictor import LoadedModel
    from ticket_urgency.settings import Settings
    from ticket_urgency.storage import Storage

OUTPUT_COLUMNS = ("prediction", "confidence", "needs_review", "model_version")
"""Columns batch scoring appends."""

DEFAULT_CHUNK_ROWS = 5000

Progress = Callable[[int, int], None]
"""Called after each chunk with ``(rows just scored, total rows)``."""


@dataclass
class BatchResult:
    """What a batch scoring run did."""

    input: str
    output: str
    rows: int
    model_uri: str
    model_version: str
    needs_review: int = 0
    predictions: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def load_batch_model(settings: Settings, model_uri: str | None = None) -> LoadedModel:
    """Resolve ``model_uri`` (default ``settings.model_uri``) in the registry and load it.

    Raises:
        UserFacingError: When the URI is malformed, names nothing, or cannot be loaded.
    """
    from mlflow.exceptions import MlflowException

    from ticket_urgency.predictor import (
        ModelLoadError,
        ModelNotFoundError,
        load_model,
        make_client,
        resolve_model,
    )

    uri = model_uri or settings.model_uri
    client = make_client(settings)
    try:
        ref = resolve_model(client, uri)
        return load_model(settings, ref, client)
    except ValueError as exc:
        raise UserFacingError(str(exc)) from None
    except ModelNotFoundError as exc:
        raise UserFacingError(
            f"{exc}; train and promote a model first, or pass --model-uri"
        ) from None
    except ModelLoadError as exc:
        raise UserFacingError(str(exc)) from None
    except MlflowException as exc:
        raise UserFacingError(
            f"the registry at {settings.mlflow_tracking_uri} failed: {exc}"
        ) from None


def input_columns(tickets: pd.DataFrame, header: list[str]) -> list[str]:
    """Return the columns of ``tickets`` that the input file had (not the derived ones)."""
    return [c for c in tickets.columns if c in header or c not in (ID_COLUMN, LABEL_COLUMN)]


def score_frame(model: LoadedModel, tickets: pd.DataFrame, review_threshold: float) -> pd.DataFrame:
    """Return ``tickets`` with the :data:`OUTPUT_COLUMNS` added (pure; no I/O).

    Args:
        model: A loaded model (see :func:`load_batch_model`).
        tickets: At least one row with the four feature columns (strings).
        review_threshold: ``needs_review`` is true below this confidence.
    """
    columns = {c: tickets[c].astype(str).tolist() for c in FEATURE_COLUMNS}
    proba = model.predict_proba(columns)
    out = tickets.copy()
    confidence = proba.max(axis=1)
    out["prediction"] = model.labels(proba)
    out["confidence"] = confidence.round(6)
    out["needs_review"] = confidence < review_threshold
    out["model_version"] = model.version
    return out


def _header(data: bytes) -> list[str]:
    import csv
    import io

    first = data[: 1 << 20].decode("utf-8-sig", errors="ignore")
    try:
        return [h.strip() for h in next(csv.reader(io.StringIO(first, newline="")))]
    except (csv.Error, StopIteration):
        return []


def _gcs_object(settings: Settings, uri: str) -> tuple[Storage, str]:
    """The storage of ``uri``'s bucket and the object key (a file, not a folder)."""
    from ticket_urgency.storage import open_storage, split_gs_uri

    try:
        bucket, key = split_gs_uri(uri)
    except ValueError as exc:
        raise UserFacingError(str(exc)) from None
    if not key or uri.endswith("/"):
        raise UserFacingError(f"{uri}: names a bucket or folder, not a CSV file")
    return open_storage(f"gs://{bucket}", settings), key


def _read_input(settings: Settings, src: str) -> bytes:
    """The bytes of the ticket file at ``src`` (a local path or a ``gs://`` object)."""
    from ticket_urgency.storage import StorageError

    try:
        if src.startswith("gs://"):
            storage, key = _gcs_object(settings, src)
            return storage.read_bytes(key)
        return Path(src).read_bytes()
    except FileNotFoundError:
        raise UserFacingError(f"{src}: does not exist") from None
    except IsADirectoryError:
        raise UserFacingError(f"{src}: is a directory, not a CSV file") from None
    except StorageError as exc:
        raise UserFacingError(str(exc)) from None


def _write_output(settings: Settings, dest: str, write: Callable[[IO[str]], None]) -> None:
    """Write the scored CSV to ``dest`` all at once: nothing, or the whole file.

    A local destination is written to a temporary file next to it and renamed into place;
    a ``gs://`` destination is written to a local temporary file and uploaded as one object.
    """
    from ticket_urgency.storage import StorageError

    remote = dest.startswith("gs://")
    if remote:
        storage, key = _gcs_object(settings, dest)
        fd, tmp_name = tempfile.mkstemp(prefix="ticket-urgency-scored-", suffix=".csv")
    else:
        path = Path(dest)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            write(fh)
        if remote:
            try:
                storage.write_bytes(key, Path(tmp_name).read_bytes())
            except StorageError as exc:
                raise UserFacingError(f"{dest}: could not be written: {exc}") from None
        else:
            os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def predict_file(
    settings: Settings,
    in_path: str | Path,
    out_path: str | Path,
    *,
    model_uri: str | None = None,
    model: LoadedModel | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
) -> BatchResult:
    """Score a ticket CSV with a registered model and write the scored CSV.

    Args:
        settings: Settings (registry, ``review_threshold``, ``model_uri``).
        in_path: The ticket CSV (the data contract's four columns; labels optional): a local
            path or ``gs://bucket/path.csv``.
        out_path: Where to write the scored CSV, local or ``gs://``: replaced all at once
            (local folders are created).
        model_uri: Registry URI; default ``settings.model_uri``. Ignored when ``model`` given.
        model: An already loaded model (e.g. shared by several files).
        chunk_rows: Rows scored (and written) per step.
        progress: Called after each chunk with ``(its row count, total rows)``.

    Returns:
        What was done.

    Raises:
        DataContractError: When the input breaks the contract (nothing written).
        UserFacingError: When the model cannot be resolved or loaded.
    """
    start = time.perf_counter()
    src, out = str(in_path), str(out_path)
    data = _read_input(settings, src)
    tickets = parse_tickets(data, src)
    keep = input_columns(tickets, _header(data))
    del data
    loaded = model or load_batch_model(settings, model_uri)
    counts: Counter[str] = Counter()
    review = 0
    cols = [c for c in keep if c not in OUTPUT_COLUMNS] + list(OUTPUT_COLUMNS)

    def write(fh: IO[str]) -> None:
        nonlocal review
        for first in range(0, len(tickets), max(1, chunk_rows)):
            chunk = tickets.iloc[first : first + chunk_rows]
            scored = score_frame(loaded, chunk, settings.review_threshold)
            scored[cols].to_csv(fh, index=False, header=first == 0, lineterminator="\n")
            counts.update(scored["prediction"].tolist())
            review += int(scored["needs_review"].sum())
            if progress is not None:
                progress(len(chunk), len(tickets))

    _write_output(settings, out, write)
    return BatchResult(
        input=src,
        output=out,
        rows=len(tickets),
        model_uri=loaded.ref.uri,
        model_version=loaded.version,
        needs_review=review,
        predictions=dict(counts.most_common()),
        seconds=round(time.perf_counter() - start, 3),
    )
