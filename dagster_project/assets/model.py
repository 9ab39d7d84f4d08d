"""Model assets: train + register a challenger, then the champion/challenger promotion gate."""

from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    Config,
    DagsterInstance,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from dagster_project.assets.data import combined_tickets
from dagster_project.resources import (
    MLflowResource,
    NotifierResource,
    ServingResource,
    TicketStorage,
)
from ticket_urgency.registry import promote
from ticket_urgency.training import SEARCH_GRID, train

MODEL_GROUP = "model"


class TrainConfig(Config):  # type: ignore[misc]
    """Run configuration of the training asset."""

    data: str = Field(default="combined", description="combined, reference or a CSV path.")
    search: bool = Field(default=True, description="Choose hyperparameters on a validation split.")
    compare_baseline: bool = Field(
        default=True, description="Also fit the original design and log its macro-F1."
    )


MODEL_CHECK_NAMES = ("model_beats_majority_baseline", "model_signature_present")


def meta_value(metadata: Mapping[str, Any], name: str) -> Any:
    """The plain value of a metadata entry (None when absent)."""
    value = metadata.get(name)
    return getattr(value, "value", value)


def latest_model_version(instance: DagsterInstance) -> str | None:
    """The version recorded by the latest materialization of ``ticket_urgency_model``."""
    event = instance.get_latest_materialization_event(AssetKey("ticket_urgency_model"))
    mat = event.asset_materialization if event else None
    if mat is None or "version" not in mat.metadata:
        return None
    return str(meta_value(mat.metadata, "version"))


def failed_model_checks(instance: DagsterInstance, version: str) -> list[str]:
    """Model checks that did not pass for ``version`` (not run, failed, or run on another)."""
    failed = []
    for name in MODEL_CHECK_NAMES:
        record = instance.get_latest_asset_check_evaluation_record(
            AssetCheckKey(AssetKey("ticket_urgency_model"), name)
        )
        evaluation = None
        if record is not None and record.event is not None and record.event.dagster_event:
            evaluation = record.event.dagster_event.event_specific_data
        checked = meta_value(getattr(evaluation, "metadata", {}) or {}, "version")
        if not getattr(evaluation, "passed", False) or str(checked) != version:
            failed.append(name)
    return failed


def metrics_table(metrics: dict[str, float]) -> MetadataValue:
    """Render the per-class precision/recall/F1 of ``metrics`` as a Markdown table."""
    labels = sorted(k.removeprefix("f1_") for k in metrics if k.startswith("f1_"))
    lines = ["| label | precision | recall | F1 |", "|---|---:|---:|---:|"]
    for label in labels:
        lines.append(
            f"| {label} | {metrics.get(f'precision_{label}', 0.0):.3f} "
            f"| {metrics.get(f'recall_{label}', 0.0):.3f} | {metrics.get(f'f1_{label}', 0.0):.3f} |"
        )
    return MetadataValue.md("\n".join(lines))


@asset(group_name=MODEL_GROUP, kinds={"mlflow", "sklearn"}, deps=[combined_tickets])
def ticket_urgency_model(
    context: AssetExecutionContext,
    config: TrainConfig,
    storage: TicketStorage,
    mlflow: MLflowResource,
) -> MaterializeResult:
    """A new registered model version trained on the combined tickets (MLflow run + version)."""
    settings = mlflow.apply(storage.settings())
    result = train(
        settings,
        config.data,
        search_grid=SEARCH_GRID if config.search else None,
        compare_baseline=config.compare_baseline,
    )
    context.log.info(
        f"registered {result.model_name} version {result.version} "
        f"(macro-F1 {result.metrics['macro_f1']:.3f}, run {result.run_id})"
    )
    headline = ("macro_f1", "accuracy", "weighted_f1", "baseline_macro_f1", "ece", "log_loss")
    meta: dict[str, Any] = {
        "version": result.version,
        "model_uri": result.model_uri,
        "run_id": result.run_id,
        "mlflow_run": mlflow.run_link(result.run_id),
        **{k: float(result.metrics[k]) for k in headline if k in result.metrics},
        "per_class": metrics_table(result.metrics),
        "labels": MetadataValue.json(result.labels),
        "n_train": result.n_train,
        "n_test": result.n_test,
        "data_source": MetadataValue.path(result.data_source),
        "data_digest": result.data_digest,
        "snapshot_uri": MetadataValue.path(result.snapshot_uri),
    }
    return MaterializeResult(metadata=meta)


class PromoteConfig(Config):  # type: ignore[misc]
    """Run configuration of the promotion gate."""

    force: bool = Field(default=False, description="Promote whatever the scores say.")
    eval_path: str | None = Field(default=None, description="Evaluate on this labelled CSV.")


def _score(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


@asset(group_name=MODEL_GROUP, kinds={"mlflow"}, deps=[ticket_urgency_model])
def production_model(
    context: AssetExecutionContext,
    config: PromoteConfig,
    storage: TicketStorage,
    mlflow: MLflowResource,
    serving: ServingResource,
    notifier: NotifierResource,
) -> MaterializeResult:
    """The promotion gate (challenger vs Production on the newest 20% of combined), then reload."""
    version = latest_model_version(context.instance)
    if version is None:
        raise Failure("ticket_urgency_model has no materialization with a registered version")
    failed = failed_model_checks(context.instance, version)
    if failed and not config.force:
        raise Failure(
            f"version {version} did not pass {', '.join(failed)}; it is not promoted",
            metadata={"version": version, "failed_checks": MetadataValue.json(failed)},
        )
    settings = mlflow.apply(storage.settings())
    decision = promote(settings, version=version, eval_path=config.eval_path, force=config.force)
    context.log.info(f"promotion of version {version}: {decision.decision} ({decision.reason})")
    meta: dict[str, Any] = {
        "decision": decision.decision,
        "promoted": decision.promoted,
        "reason": decision.reason,
        "challenger_version": decision.challenger_version,
        "previous_version": decision.champion_version or "none",
        "production_version": decision.production_version or "none",
        "challenger_macro_f1": _score(decision.challenger_macro_f1),
        "champion_macro_f1": _score(decision.champion_macro_f1),
        "challenger_urgent_recall": _score(decision.challenger_urgent_recall),
        "champion_urgent_recall": _score(decision.champion_urgent_recall),
        "most_urgent_label": decision.most_urgent_label,
        "eval_rows": decision.eval_rows,
        "eval_source": decision.eval_source,
        "model_uri": settings.model_uri,
    }
    meta = {k: v for k, v in meta.items() if v is not None}
    event = "model_promoted" if decision.promoted else "promotion_refused"
    if decision.decision != "unchanged":
        outcome = notifier.send(event, decision.to_dict())
        if outcome is not None:
            meta["webhook"] = MetadataValue.json(outcome.to_dict())
    if decision.promoted or decision.decision == "unchanged":  # a no-op reload heals stragglers
        meta.update(_reload(context, serving, notifier, decision.production_version))
    return MaterializeResult(metadata=meta)


def _reload(
    context: AssetExecutionContext,
    serving: ServingResource,
    notifier: NotifierResource,
    version: str | None,
) -> dict[str, Any]:
    """Ask every serving URL to reload; failures are warnings and recorded, never raised."""
    if not serving.urls:
        context.log.info("no serving URLs configured (TICKET_URGENCY_SERVING_URLS): no reload")
        return {"reload": "no serving URLs configured"}
    outcomes = serving.reload()
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        context.log.warning(f"reload of {o.url} failed: {o.error} (status {o.status})")
    if failed:
        notifier.send(
            "reload_failed",
            {"production_version": version, "failures": [o.to_dict() for o in failed]},
        )
    return {
        "reload": MetadataValue.json([o.to_dict() for o in outcomes]),
        "reload_ok": len(outcomes) - len(failed),
        "reload_failed": len(failed),
    }
