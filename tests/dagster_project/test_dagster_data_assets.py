"""The data assets and their checks, materialized for real on temp storage."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dagster import AssetCheckSeverity, DagsterInstance, materialize

from dagster_project.assets.data import combined_tickets, new_tickets, reference_tickets
from dagster_project.checks import DATA_CHECKS
from ticket_urgency.contract import ID_COLUMN, parse_tickets, to_csv_bytes
from ticket_urgency.datasets import COMBINED_KEY, NEW_KEY, REFERENCE_KEY, upload
from ticket_urgency.generate import generate_dataset
from ticket_urgency.storage import LocalStorage

DATA_ASSETS = [reference_tickets, new_tickets, combined_tickets]


def _run(resources: dict[str, Any], instance: DagsterInstance) -> Any:
    return materialize(
        [*DATA_ASSETS, *DATA_CHECKS], resources=resources, instance=instance, raise_on_error=False
    )


def _checks(result: Any) -> dict[str, Any]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_data_assets_materialize_with_metadata_and_passing_checks(
    uploaded: LocalStorage, resources: dict[str, Any], instance: DagsterInstance
) -> None:
    result = _run(resources, instance)
    assert result.success
    checks = _checks(result)
    assert set(checks) == {key.name for c in DATA_CHECKS for key in c.check_keys}
    failed = {name for name, e in checks.items() if not e.passed}
    assert not failed
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    ref = mats["reference_tickets"].materialization.metadata
    assert ref["dagster/row_count"].value == 400
    assert ref["uri"].value == uploaded.uri(REFERENCE_KEY)
    assert len(str(ref["sha256"].value)) == 64
    assert "| label |" in ref["label_mix"].value
    new = mats["new_tickets"].materialization.metadata
    assert new["dagster/row_count"].value == 300
    combined = mats["combined_tickets"].materialization.metadata
    assert combined["reference_rows"].value == 400
    assert combined["dagster/row_count"].value == 400 + new["labelled_rows"].value
    assert combined["uri"].value == uploaded.uri(COMBINED_KEY)


def test_tampered_reference_fails_the_frozen_check_and_blocks_downstream(
    uploaded: LocalStorage, resources: dict[str, Any], instance: DagsterInstance
) -> None:
    assert _run(resources, instance).success
    data = uploaded.read_bytes(REFERENCE_KEY)
    # flip one label in place: still a valid file, but not the frozen reference
    lines = data.decode().split("\n")
    header = lines[0].split(",")
    assert header[-1] == "label_urgency" or "label_urgency" in header
    lines[1] = lines[1].rsplit(",", 1)[0] + ",tampered"
    uploaded.write_bytes(REFERENCE_KEY, "\n".join(lines).encode())

    result = _run(resources, instance)
    checks = _checks(result)
    assert not checks["reference_unchanged"].passed
    assert checks["reference_unchanged"].severity == AssetCheckSeverity.ERROR
    message = str(checks["reference_unchanged"].description)
    assert "changed without upload --replace-reference" in message
    assert checks["reference_contract"].passed  # still a valid file: only the digest catches it
    # blocking: the combined set is not rebuilt from the tampered reference
    materialized = {m.asset_key.path[-1] for m in result.get_asset_materialization_events()}
    assert "combined_tickets" not in materialized
    assert not result.success


def test_broken_new_data_fails_the_contract_check(
    uploaded: LocalStorage, resources: dict[str, Any], instance: DagsterInstance
) -> None:
    uploaded.write_bytes(NEW_KEY, b"title,description\nonly two,columns\n")
    result = _run(resources, instance)
    check = _checks(result)["new_tickets_contract"]
    assert not check.passed
    assert "source" in str(check.description) and NEW_KEY in str(check.description)


def test_duplicate_ids_in_combined_fail_the_unique_check(
    uploaded: LocalStorage, resources: dict[str, Any], instance: DagsterInstance
) -> None:
    # a writer that bypassed upload put a reference ticket into new data
    reference = parse_tickets(uploaded.read_bytes(REFERENCE_KEY), "ref")
    new = parse_tickets(uploaded.read_bytes(NEW_KEY), "new")
    clash = reference.iloc[[0]].reindex(columns=new.columns, fill_value="")
    uploaded.write_bytes(NEW_KEY, to_csv_bytes(pd.concat([new, clash], ignore_index=True)))
    result = _run(resources, instance)
    checks = _checks(result)
    assert checks["new_tickets_contract"].passed
    check = checks["combined_unique_ids"]
    assert not check.passed
    assert str(reference[ID_COLUMN].iloc[0]) in str(check.description)
    assert not result.success


def test_deliberate_reference_replacement_starts_a_new_baseline(
    uploaded: LocalStorage, resources: dict[str, Any], instance: DagsterInstance
) -> None:
    assert _run(resources, instance).success
    reference, _ = generate_dataset(300, 10, seed=99)
    report = upload(uploaded, reference, None, replace_reference=True)
    assert report.reference_status == "replaced"
    result = _run(resources, instance)
    assert result.success
    assert _checks(result)["reference_unchanged"].passed


def test_reference_alone_is_enough(
    local_storage: LocalStorage, resources: dict[str, Any], instance: DagsterInstance
) -> None:
    reference, _ = generate_dataset(200, 0, seed=1)
    upload(local_storage, reference, None)
    result = _run(resources, instance)
    assert result.success
    mats = {m.asset_key.path[-1]: m for m in result.get_asset_materialization_events()}
    assert mats["new_tickets"].materialization.metadata["dagster/row_count"].value == 0
    assert mats["combined_tickets"].materialization.metadata["dagster/row_count"].value == 200
