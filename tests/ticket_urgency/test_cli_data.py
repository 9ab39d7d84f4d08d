"""The generate and upload commands as a user runs them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.settings import Settings

runner = CliRunner()


def stored_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    out = tmp_path / "gen"
    result = runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(out),
            "--rows",
            "300",
            "--new-rows",
            "100",
            "--drift",
            "all",
            "--seed",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_generate_is_deterministic(generated: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    runner.invoke(
        app,
        [
            "generate",
            "--out",
            str(again),
            "--rows",
            "300",
            "--new-rows",
            "100",
            "--drift",
            "all",
            "--seed",
            "1",
        ],
    )
    for name in ("tickets.csv", "new_tickets.csv"):
        assert (again / name).read_bytes() == (generated / name).read_bytes()


def test_generate_rejects_unknown_drift(tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "--out", str(tmp_path), "--drift", "weather"])
    assert result.exit_code == 2
    assert "--drift must be one of" in result.output


def test_upload_prints_three_uris_and_counts(generated: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "upload",
            "--reference",
            str(generated / "tickets.csv"),
            "--new",
            str(generated / "new_tickets.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    store = tmp_path / "store"
    assert f"Reference (frozen): {store / 'datasets/tickets.csv'}" in result.output
    assert "100 added, 0 replaced" in result.output
    assert "[400 rows]" in result.output


def test_upload_works_on_the_gcs_emulator(generated: Path, gcs_settings: Settings) -> None:
    result = runner.invoke(
        app,
        [
            "upload",
            "--json",
            "--reference",
            str(generated / "tickets.csv"),
            "--new",
            str(generated / "new_tickets.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{gcs_settings.storage}/datasets/combined_tickets.csv" in result.output


def test_bad_file_and_other_reference_change_nothing(generated: Path, tmp_path: Path) -> None:
    ok = runner.invoke(
        app,
        [
            "upload",
            "--reference",
            str(generated / "tickets.csv"),
            "--new",
            str(generated / "new_tickets.csv"),
        ],
    )
    assert ok.exit_code == 0
    store = tmp_path / "store"
    before = stored_digests(store)

    bad = tmp_path / "bad.csv"
    bad.write_text("title,description,source\nx,y,web\n")
    result = runner.invoke(app, ["upload", "--new", str(bad)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert f"{bad}: is missing required column 'customer_tier'" in result.output

    other = tmp_path / "other"
    runner.invoke(app, ["generate", "--out", str(other), "--rows", "50", "--seed", "7"])
    result = runner.invoke(app, ["upload", "--reference", str(other / "tickets.csv")])
    assert result.exit_code == 2
    assert "already holds a different reference" in result.output
    assert stored_digests(store) == before
