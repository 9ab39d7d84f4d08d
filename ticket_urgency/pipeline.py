"""Pure helpers the orchestrator uses: dataset summaries, data checks and the retrain decision.

Nothing here imports Dagster. The Dagster assets, checks and sensors in ``dagster_project``
are thin wrappers around these functions, so the same logic is testable without Dagster.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from ticket_urgency.contract import (
    ID_COLUMN,
    LABEL_COLUMN,
    DataContractError,
    Labels,
    parse_tickets,
)
from ticket_urgency.datasets import ARCHIVE_PREFIX, DatasetMissingError, sha256
from ticket_urgency.settings import Settings
from ticket_urgency.storage import Storage

MIN_CLASSES = 2
"""A retraining set needs at least this many label values."""
MIN_CLASS_SHARE = 0.01
"""Below this share a label value is too rare to learn (warning)."""
MAX_CLASS_SHARE = 0.95
"""Above this share one label value swamps the others (warning)."""


@dataclass
class DatasetSummary:
    """What a stored ticket dataset holds, for metadata and checks."""

    key: str
    uri: str
    sha256: str
    size_bytes: int
    rows: int = 0
    labelled_rows: int = 0
    columns: list[str] = field(default_factory=list)
    label_mix: dict[str, int] = field(default_factory=dict)
    duplicate_ids: list[str] = field(default_factory=list)
    contract_error: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def label_counts(df: pd.DataFrame) -> dict[str, int]:
    """Return the count of each non-empty label value, most frequent first."""
    labels = df[LABEL_COLUMN].astype(str).str.strip()
    counts = labels[labels != ""].value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def duplicate_ids(df: pd.DataFrame, limit: int = 20) -> list[str]:
    """Return up to ``limit`` ticket ids that occur more than once."""
    if ID_COLUMN not in df:
        return []
    dup = df[ID_COLUMN][df[ID_COLUMN].duplicated(keep="first")]
    return [str(x) for x in dict.fromkeys(dup.tolist())][:limit]


def raw_duplicate_ids(data: bytes, limit: int = 20) -> list[str]:
    """Return duplicate ticket ids of a CSV without applying the contract (best effort)."""
    try:
        ids = pd.read_csv(io.BytesIO(data), usecols=[ID_COLUMN], dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError):
        return []
    return duplicate_ids(ids, limit)


def summarize_frame(df: pd.DataFrame) -> dict[str, object]:
    """Return rows, labelled rows, columns, label mix and duplicate ids of ``df``."""
    mix = label_counts(df)
    return {
        "rows": len(df),
        "labelled_rows": sum(mix.values()),
        "columns": [str(c) for c in df.columns],
        "label_mix": mix,
        "duplicate_ids": duplicate_ids(df),
    }


def summarize_dataset(storage: Storage, key: str, *, labels: Labels = "optional") -> DatasetSummary:
    """Read and describe a stored dataset; a contract violation is recorded, not raised.

    Duplicate ids are counted on the raw file (the contract rejects them too), so the
    combined set, which the contract parser would reject outright, still gets a summary.

    Raises:
        DatasetMissingError: When the object does not exist.
    """
    try:
        data = storage.read_bytes(key)
    except FileNotFoundError:
        raise DatasetMissingError(f"{storage.uri(key)} does not exist yet; run upload") from None
    summary = DatasetSummary(key, storage.uri(key), sha256(data), len(data))
    try:
        df = parse_tickets(data, storage.uri(key), labels=labels)
    except DataContractError as exc:
        summary.contract_error = str(exc)
        summary.duplicate_ids = raw_duplicate_ids(data)
        return summary
    for name, value in summarize_frame(df).items():
        setattr(summary, name, value)
    return summary


def label_mix_problems(
    mix: Mapping[str, int],
    *,
    min_classes: int = MIN_CLASSES,
    min_share: float = MIN_CLASS_SHARE,
    max_share: float = MAX_CLASS_SHARE,
) -> tuple[list[str], list[str]]:
    """Judge a label mix.

    Returns:
        ``(errors, warnings)``: errors make a retraining set unusable (fewer than
        ``min_classes`` labels); warnings flag a label rarer than ``min_share`` or one label
        above ``max_share``.
    """
    total = sum(mix.values())
    errors: list[str] = []
    warnings: list[str] = []
    if len(mix) < min_classes:
        errors.append(f"only {len(mix)} label value(s) {sorted(mix)}; need {min_classes}")
        return errors, warnings
    for label, count in mix.items():
        share = count / total
        if share < min_share:
            warnings.append(f"label {label!r} is {share:.2%} of the rows (< {min_share:.0%})")
        if share > max_share:
            warnings.append(f"label {label!r} is {share:.2%} of the rows (> {max_share:.0%})")
    return errors, warnings


def new_label_values(reference_mix: Mapping[str, int], other_mix: Mapping[str, int]) -> list[str]:
    """Return label values of ``other_mix`` that the reference never had (news, not errors)."""
    return sorted(set(other_mix) - set(reference_mix))


def archived_reference_count(storage: Storage) -> int:
    """Return how many references were deliberately replaced (archived) so far."""
    return sum(1 for k in storage.list(ARCHIVE_PREFIX) if k.endswith(".csv"))


def majority_baseline(labels: pd.Series | list[str]) -> dict[str, float]:
    """Scores of always predicting the most frequent label of ``labels``.

    Returns:
        ``{"accuracy": p, "macro_f1": 2p/(1+p)/K}`` where ``p`` is the majority share and ``K``
        the number of label values (the other classes score F1 = 0).
    """
    series = pd.Series(labels).astype(str)
    series = series[series.str.strip() != ""]
    if series.empty:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    counts = series.value_counts()
    p = float(counts.iloc[0]) / len(series)
    return {"accuracy": p, "macro_f1": (2 * p / (1 + p)) / len(counts)}


@dataclass
class RetrainDecision:
    """What the drift sensor should do about one drift report."""

    request: bool
    reason: str
    handled: bool = True
    """Whether the report is settled; a report blocked by the cooldown is looked at again."""


def decide_retrain(
    *,
    report_key: str | None,
    drift_detected: bool,
    last_report_key: str | None,
    last_request_at: datetime | None,
    now: datetime,
    cooldown_hours: float,
) -> RetrainDecision:
    """Decide whether a drift report should trigger retraining.

    A report triggers at most once. A drifting report that arrives inside the cooldown after
    the last request is held back, not dropped: once the cooldown is over it triggers, unless
    a newer report has replaced it by then.

    Args:
        report_key: Storage key of the latest drift report, or None when there is none.
        drift_detected: Whether that report says drift.
        last_report_key: The report the sensor already handled.
        last_request_at: When the sensor last requested retraining.
        now: The current time (timezone-aware).
        cooldown_hours: Minimum hours between two requests.
    """
    if report_key is None:
        return RetrainDecision(False, "no drift report yet")
    if report_key == last_report_key:
        return RetrainDecision(False, f"{report_key} was already handled")
    if not drift_detected:
        return RetrainDecision(False, f"{report_key} shows no drift")
    if last_request_at is not None:
        ready_at = last_request_at + timedelta(hours=cooldown_hours)
        if now < ready_at:
            return RetrainDecision(
                False,
                f"{report_key} shows drift but retraining is cooling down until "
                f"{ready_at.isoformat(timespec='seconds')}",
                handled=False,
            )
    return RetrainDecision(True, f"{report_key} shows drift")


EVALUATION_ARTIFACT = "evaluation/test_predictions.csv"
"""Held-out predictions that training logs with each run."""


@dataclass
class ModelEvaluation:
    """A registered version's held-out evaluation next to a majority-class baseline."""

    version: str
    run_id: str
    evaluated: bool
    macro_f1: float | None
    n_test: int
    baseline_macro_f1: float
    baseline_accuracy: float
    majority_label: str | None
    note: str = ""

    @property
    def beats_baseline(self) -> bool:
        """Whether the model's macro-F1 is above the majority-class baseline."""
        return self.evaluated and (self.macro_f1 or 0.0) > self.baseline_macro_f1

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {**asdict(self), "beats_baseline": self.beats_baseline}


def evaluate_registered_version(settings: Settings, version: str) -> ModelEvaluation:
    """Read a version's run: its held-out macro-F1 and the held-out labels it was scored on.

    The baseline is computed from the same held-out labels (logged by training as
    :data:`EVALUATION_ARTIFACT`), so both numbers describe the same rows.
    """
    from ticket_urgency.mlflow_utils import client

    c = client(settings)
    mv = c.get_model_version(settings.model_name, version)
    run_id = str(mv.run_id)
    metrics = c.get_run(run_id).data.metrics
    macro_f1 = metrics.get("macro_f1")
    try:
        path = c.download_artifacts(run_id, EVALUATION_ARTIFACT)
        labels = pd.read_csv(path, dtype=str, keep_default_na=False)[LABEL_COLUMN]
    except Exception as exc:  # a missing artifact is a failed check, not a crash
        return ModelEvaluation(
            version, run_id, False, macro_f1, 0, 0.0, 0.0, None, f"no held-out evaluation: {exc}"
        )
    base = majority_baseline(labels)
    majority = str(labels.value_counts().index[0]) if len(labels) else None
    evaluated = macro_f1 is not None and len(labels) > 0
    return ModelEvaluation(
        version,
        run_id,
        evaluated,
        macro_f1,
        len(labels),
        base["macro_f1"],
        base["accuracy"],
        majority,
        "" if evaluated else "the run logged no macro_f1 or an empty held-out set",
    )


def signature_inputs(settings: Settings, version: str) -> list[str] | None:
    """Return the input column names of a registered version's signature, or None."""
    import mlflow

    from ticket_urgency.mlflow_utils import configure

    configure(settings)
    info = mlflow.models.get_model_info(f"models:/{settings.model_name}/{version}")
    if info.signature is None or info.signature.inputs is None:
        return None
    return [str(name) for name in info.signature.inputs.input_names()]
