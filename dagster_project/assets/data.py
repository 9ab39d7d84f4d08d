"""Data assets: the frozen reference, the accumulated new data and the combined retraining set.

The files are stored by ``ticket-urgency upload``; these assets load and describe them (and
rebuild the combined set when it is stale), so the Dagster UI shows what each run used.
"""

from typing import Any

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from dagster_project.resources import TicketStorage
from ticket_urgency.contract import DataContractError
from ticket_urgency.datasets import (
    COMBINED_KEY,
    NEW_KEY,
    REFERENCE_KEY,
    combined_state,
    ensure_combined,
)
from ticket_urgency.pipeline import (
    DatasetSummary,
    archived_reference_count,
    new_label_values,
    summarize_dataset,
)

DATA_GROUP = "data"


def mix_table(mix: dict[str, int]) -> MetadataValue:
    """Render a label mix as a Markdown table (count and share per label)."""
    total = sum(mix.values()) or 1
    lines = ["| label | rows | share |", "|---|---:|---:|"]
    lines += [f"| {k} | {v} | {v / total:.1%} |" for k, v in mix.items()]
    return MetadataValue.md("\n".join(lines))


def summary_metadata(summary: DatasetSummary) -> dict[str, Any]:
    """Dagster metadata for a dataset summary."""
    meta: dict[str, Any] = {
        "uri": MetadataValue.path(summary.uri),
        "sha256": summary.sha256,
        "size_bytes": summary.size_bytes,
        "dagster/row_count": summary.rows,
        "labelled_rows": summary.labelled_rows,
        "label_mix": mix_table(summary.label_mix),
        "columns": MetadataValue.json(summary.columns),
        "duplicate_ids": len(summary.duplicate_ids),
    }
    if summary.contract_error:
        meta["contract_error"] = summary.contract_error
    return meta


@asset(group_name=DATA_GROUP, kinds={"csv"})
def reference_tickets(context: AssetExecutionContext, storage: TicketStorage) -> MaterializeResult:
    """The frozen, labelled reference tickets (datasets/tickets.csv), stored by upload."""
    store = storage.open()
    summary = summarize_dataset(store, REFERENCE_KEY, labels="required")
    if summary.contract_error:
        context.log.error(summary.contract_error)
    meta = summary_metadata(summary)
    meta["archived_references"] = archived_reference_count(store)
    return MaterializeResult(metadata=meta)


@asset(group_name=DATA_GROUP, kinds={"csv"})
def new_tickets(context: AssetExecutionContext, storage: TicketStorage) -> MaterializeResult:
    """New production tickets (datasets/new_tickets.csv); labels optional, merged by ticket id."""
    store = storage.open()
    if not store.exists(NEW_KEY):  # new data is optional: the reference alone can train
        context.log.warning(f"{store.uri(NEW_KEY)} does not exist yet: no new data to monitor")
        return MaterializeResult(
            metadata={
                "uri": MetadataValue.path(store.uri(NEW_KEY)),
                "dagster/row_count": 0,
                "status": "no new data uploaded yet",
            }
        )
    summary = summarize_dataset(store, NEW_KEY, labels="optional")
    if summary.contract_error:
        context.log.error(summary.contract_error)
    meta = summary_metadata(summary)
    meta["unlabelled_rows"] = summary.rows - summary.labelled_rows
    return MaterializeResult(metadata=meta)


@asset(group_name=DATA_GROUP, kinds={"csv"}, deps=[reference_tickets, new_tickets])
def combined_tickets(context: AssetExecutionContext, storage: TicketStorage) -> MaterializeResult:
    """The retraining set: reference + labelled new rows (rebuilt when its inputs changed)."""
    store = storage.open()
    retention_days = storage.settings().retention_days
    state = combined_state(store, retention_days=retention_days)
    try:
        _, rebuilt = ensure_combined(store, retention_days=retention_days)
        context.log.info(f"combined set {'rebuilt' if rebuilt else 'up to date'} ({state.reason})")
    except DataContractError as exc:  # e.g. duplicate ids: recorded, the checks fail on it
        rebuilt = not state.fresh
        context.log.error(str(exc))
    summary = summarize_dataset(store, COMBINED_KEY, labels="required")
    reference = summarize_dataset(store, REFERENCE_KEY, labels="required")
    meta = summary_metadata(summary)
    meta.update(
        {
            "rebuilt": rebuilt,
            "reference_rows": reference.rows,
            "new_labelled_rows": summary.rows - reference.rows,
            "new_label_values": MetadataValue.json(
                new_label_values(reference.label_mix, summary.label_mix)
            ),
        }
    )
    return MaterializeResult(metadata=meta)
