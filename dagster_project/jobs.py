"""Asset jobs that the schedule and the sensor start."""

from dagster import AssetSelection, define_asset_job

drift_monitoring_job = define_asset_job(
    "drift_monitoring",
    selection=AssetSelection.assets("reference_tickets", "new_tickets", "drift_report"),
    description="Check the data and compute drift of the new tickets against the reference.",
)

retrain_job = define_asset_job(
    "retrain",
    selection=AssetSelection.assets("combined_tickets", "ticket_urgency_model", "production_model"),
    description="Rebuild the combined set, train and register a model, run the promotion gate.",
)
