"""Schedules: daily drift monitoring."""

from dagster import DefaultScheduleStatus, ScheduleDefinition

from dagster_project.jobs import drift_monitoring_job

daily_drift_schedule = ScheduleDefinition(
    name="daily_drift_monitoring",
    job=drift_monitoring_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Every day at 06:00 UTC: check the data and write a new drift report.",
)
