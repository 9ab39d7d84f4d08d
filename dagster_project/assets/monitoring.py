"""Monitoring asset: NannyML drift of the new data against the frozen reference."""

from typing import Any

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from dagster_project.assets.data import new_tickets, reference_tickets
from dagster_project.resources import MLflowResource, NotifierResource, TicketStorage
from ticket_urgency.drift import DriftConfig, NoNewDataError, run_drift

MONITORING_GROUP = "monitoring"


class DriftRunConfig(Config):  # type: ignore[misc]
    """Run configuration of the drift report."""

    nannyml: bool = Field(
        default=True, description="Also run NannyML (per-chunk drift, CBPE, plots)."
    )


def drift_table(features: dict[str, dict[str, Any]]) -> MetadataValue:
    """Render per-feature drift scores as a Markdown table, alerting features first."""
    lines = [
        "| feature | kind | method | effect size | threshold | adj. p-value | alert |",
        "|---|---|---|---:|---:|---:|:---:|",
    ]
    ordered = sorted(features.items(), key=lambda kv: (not kv[1].get("alert"), kv[0]))
    for name, f in ordered:
        p_adj = f.get("p_value_adjusted")
        p_text = f"{p_adj:.2g}" if isinstance(p_adj, int | float) else "-"
        lines.append(
            f"| {name} | {f.get('kind', '')} | {f.get('method', '')} "
            f"| {float(f.get('effect_size', 0.0)):.3f} | {float(f.get('threshold', 0.0)):.2f} "
            f"| {p_text} | {'**yes**' if f.get('alert') else 'no'} |"
        )
    return MetadataValue.md("\n".join(lines))


@asset(group_name=MONITORING_GROUP, kinds={"nannyml"}, deps=[reference_tickets, new_tickets])
def drift_report(
    context: AssetExecutionContext,
    config: DriftRunConfig,
    storage: TicketStorage,
    mlflow: MLflowResource,
    notifier: NotifierResource,
) -> MaterializeResult:
    """Drift of new vs reference tickets; writes monitoring/drift_report_<ts>.json and .html."""
    settings = mlflow.apply(storage.settings())
    cfg = DriftConfig(min_rows=settings.drift_min_rows, nannyml=config.nannyml)
    try:
        report = run_drift(settings, storage.open(), config=cfg, progress=context.log.info)
    except NoNewDataError as exc:
        context.log.warning(str(exc))
        return MaterializeResult(
            metadata={"status": "no_new_data", "drift_detected": False, "message": str(exc)}
        )
    data = report.to_dict()
    meta: dict[str, Any] = {
        "drift_detected": report.drift_detected,
        "status": report.status,
        "message": report.message,
        "alerted_features": MetadataValue.json(report.alerted_features),
        "drift_scores": drift_table(report.features),
        "rows": MetadataValue.json(data["rows"]),
        "report_uri": MetadataValue.path(report.report_uri or ""),
        "html_uri": MetadataValue.path(report.html_uri or ""),
        "model_version": str(data.get("model_version") or "none"),
    }
    if report.mlflow_run_id:
        meta["mlflow_run"] = mlflow.run_link(report.mlflow_run_id)
    if report.drift_detected:
        context.log.warning(f"drift detected: {report.message}")
        outcome = notifier.send(
            "drift_detected",
            {
                "message": report.message,
                "alerted_features": report.alerted_features,
                "report_uri": report.report_uri,
            },
        )
        if outcome is not None:
            meta["webhook"] = MetadataValue.json(outcome.to_dict())
    return MaterializeResult(metadata=meta)
