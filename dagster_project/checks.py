"""Asset checks: the data contract, the frozen reference, unique ids, label mix, model quality.

Blocking checks stop the assets downstream of a failing asset within the same run, so
drift and training never run on broken data and a model that fails its checks is never
promoted.
"""

from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
    MetadataValue,
    asset_check,
)

from dagster_project.assets.data import combined_tickets, new_tickets, reference_tickets
from dagster_project.assets.model import latest_model_version, meta_value, ticket_urgency_model
from dagster_project.resources import MLflowResource, TicketStorage
from ticket_urgency.contract import FEATURE_COLUMNS
from ticket_urgency.datasets import COMBINED_KEY, NEW_KEY, REFERENCE_KEY, sha256
from ticket_urgency.pipeline import (
    DatasetSummary,
    archived_reference_count,
    evaluate_registered_version,
    label_mix_problems,
    signature_inputs,
    summarize_dataset,
)


def materialization_metadata(
    instance: DagsterInstance, key: AssetKey, *, first: bool, limit: int = 1000
) -> list[dict[str, Any]]:
    """Return the metadata of the asset's materializations, oldest first when ``first``."""
    result = instance.fetch_materializations(key, limit=limit, ascending=first)
    out = []
    for record in result.records:
        mat = record.asset_materialization
        if mat is not None:
            out.append({k: meta_value(mat.metadata, k) for k in mat.metadata})
    return out


def reference_baseline(instance: DagsterInstance, archived: int) -> dict[str, Any] | None:
    """The first materialization of the current reference epoch.

    A deliberate ``upload --replace-reference`` archives the old reference, which starts a
    new epoch; anything else that changes the file is tampering.
    """
    for meta in materialization_metadata(instance, reference_tickets.key, first=True):
        if int(meta.get("archived_references") or 0) == archived and meta.get("sha256"):
            return meta
    return None


def _contract_result(summary: DatasetSummary) -> AssetCheckResult:
    return AssetCheckResult(
        passed=summary.contract_error is None,
        severity=AssetCheckSeverity.ERROR,
        description=summary.contract_error or f"{summary.rows} rows meet the data contract",
        metadata={"uri": MetadataValue.path(summary.uri), "rows": summary.rows},
    )


def _mix_result(summary: DatasetSummary) -> AssetCheckResult:
    errors, warnings = label_mix_problems(summary.label_mix)
    problems = errors or warnings
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
        description="; ".join(problems) or f"{len(summary.label_mix)} labels, none extreme",
        metadata={"label_mix": MetadataValue.json(summary.label_mix)},
    )


@asset_check(asset=reference_tickets, blocking=True)
def reference_contract(storage: TicketStorage) -> AssetCheckResult:
    """The reference meets the data contract and every row is labelled."""
    return _contract_result(summarize_dataset(storage.open(), REFERENCE_KEY, labels="required"))


@asset_check(asset=reference_tickets, blocking=True)
def reference_unchanged(
    context: AssetCheckExecutionContext, storage: TicketStorage
) -> AssetCheckResult:
    """The reference is byte-identical to its first materialization (frozen)."""
    store = storage.open()
    current = sha256(store.read_bytes(REFERENCE_KEY))
    baseline = reference_baseline(context.instance, archived_reference_count(store))
    if baseline is None:
        return AssetCheckResult(
            passed=True,
            description="no earlier materialization: this digest becomes the baseline",
            metadata={"sha256": current},
        )
    expected = str(baseline["sha256"])
    same = current == expected
    return AssetCheckResult(
        passed=same,
        severity=AssetCheckSeverity.ERROR,
        description=(
            "unchanged since its first materialization"
            if same
            else f"{store.uri(REFERENCE_KEY)} changed without upload --replace-reference "
            f"(sha256 {current[:12]}, frozen {expected[:12]})"
        ),
        metadata={"sha256": current, "baseline_sha256": expected},
    )


@asset_check(asset=reference_tickets, blocking=True)
def reference_label_mix(storage: TicketStorage) -> AssetCheckResult:
    """The reference holds at least two labels and none is extreme (rare ones warn)."""
    return _mix_result(summarize_dataset(storage.open(), REFERENCE_KEY, labels="required"))


@asset_check(asset=new_tickets, blocking=True)
def new_tickets_contract(storage: TicketStorage) -> AssetCheckResult:
    """The new data meets the data contract (labels optional)."""
    store = storage.open()
    if not store.exists(NEW_KEY):
        return AssetCheckResult(passed=True, description="no new data uploaded yet")
    return _contract_result(summarize_dataset(store, NEW_KEY, labels="optional"))


@asset_check(asset=combined_tickets, blocking=True)
def combined_unique_ids(storage: TicketStorage) -> AssetCheckResult:
    """No ticket id occurs twice in the combined retraining set."""
    summary = summarize_dataset(storage.open(), COMBINED_KEY, labels="required")
    dups = summary.duplicate_ids
    return AssetCheckResult(
        passed=not dups,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"duplicate ticket ids, e.g. {', '.join(dups[:5])}" if dups else "ticket ids unique"
        ),
        metadata={"duplicate_ids": MetadataValue.json(dups), "rows": summary.rows},
    )


@asset_check(asset=combined_tickets, blocking=True)
def combined_label_mix(storage: TicketStorage) -> AssetCheckResult:
    """The retraining set holds at least two labels and none is extreme (rare ones warn)."""
    return _mix_result(summarize_dataset(storage.open(), COMBINED_KEY, labels="required"))


DATA_CHECKS = [
    reference_contract,
    reference_unchanged,
    reference_label_mix,
    new_tickets_contract,
    combined_unique_ids,
    combined_label_mix,
]


def _no_model() -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=AssetCheckSeverity.ERROR,
        description="ticket_urgency_model has no materialization with a registered version",
    )


@asset_check(asset=ticket_urgency_model, blocking=True)
def model_beats_majority_baseline(
    context: AssetCheckExecutionContext, storage: TicketStorage, mlflow: MLflowResource
) -> AssetCheckResult:
    """The held-out evaluation ran and its macro-F1 beats always predicting the majority label."""
    version = latest_model_version(context.instance)
    if version is None:
        return _no_model()
    ev = evaluate_registered_version(mlflow.apply(storage.settings()), version)
    if not ev.evaluated:
        text = f"version {version}: {ev.note}"
    else:
        verb = "beats" if ev.beats_baseline else "does not beat"
        text = (
            f"version {version}: macro-F1 {ev.macro_f1:.3f} {verb} the majority-class "
            f"baseline {ev.baseline_macro_f1:.3f} ({ev.majority_label!r}) on {ev.n_test} "
            "held-out rows"
        )
    return AssetCheckResult(
        passed=ev.beats_baseline,
        severity=AssetCheckSeverity.ERROR,
        description=text,
        metadata={k: v for k, v in ev.to_dict().items() if v is not None and k != "note"},
    )


@asset_check(asset=ticket_urgency_model, blocking=True)
def model_signature_present(
    context: AssetCheckExecutionContext, storage: TicketStorage, mlflow: MLflowResource
) -> AssetCheckResult:
    """The registered model has a signature whose inputs are the four raw ticket columns."""
    version = latest_model_version(context.instance)
    if version is None:
        return _no_model()
    inputs = signature_inputs(mlflow.apply(storage.settings()), version)
    missing = sorted(set(FEATURE_COLUMNS) - set(inputs or []))
    if inputs is None:
        text = f"version {version} was logged without a signature"
    elif missing:
        text = f"version {version}: signature lacks {', '.join(missing)}"
    else:
        text = f"version {version}: signature inputs {', '.join(inputs)}"
    return AssetCheckResult(
        passed=inputs is not None and not missing,
        severity=AssetCheckSeverity.ERROR,
        description=text,
        metadata={"version": version, "inputs": MetadataValue.json(inputs or [])},
    )


MODEL_CHECKS = [model_beats_majority_baseline, model_signature_present]
