"""The registry: version resolution, the promotion gate, --force, rollback, Production URIs.

One module fixture stores data and registers two versions: v1 trained on the stored data and
v2 trained on the same rows with shuffled labels. Every test works on its own copy of that
MLflow database (the artifacts are shared read-only), so tests do not depend on each other.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from ticket_urgency.cli import app
from ticket_urgency.contract import FEATURE_COLUMNS, to_csv_bytes
from ticket_urgency.datasets import upload
from ticket_urgency.errors import UserFacingError
from ticket_urgency.generate import generate_dataset
from ticket_urgency.registry import (
    Scores,
    gate,
    load_model,
    most_urgent_label,
    production_version,
    promote,
    resolve_version,
    rollback,
)
from ticket_urgency.settings import Settings, get_settings
from ticket_urgency.storage import LocalStorage
from ticket_urgency.training import train

runner = CliRunner()
NAME = "ticket_urgency"


@dataclass
class Registered:
    root: Path
    db: Path
    eval_csv: Path


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    root = tmp_path_factory.mktemp("registry")
    reference, new = generate_dataset(500, 150, seed=9)
    shuffled = reference.copy()
    rng = np.random.default_rng(0)
    shuffled["label_urgency"] = rng.permutation(shuffled["label_urgency"].to_numpy())
    bad_csv = root / "shuffled.csv"
    bad_csv.write_bytes(to_csv_bytes(shuffled))
    eval_csv = root / "eval.csv"
    eval_csv.write_bytes(to_csv_bytes(new.head(60)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TICKET_URGENCY_STORAGE", str(root / "store"))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        get_settings.cache_clear()
        upload(LocalStorage(root / "store"), reference, new)
        fast = {"search_grid": None, "compare_baseline": False}
        good = train(get_settings(), "combined", **fast)  # type: ignore[arg-type]
        bad = train(get_settings(), str(bad_csv), **fast)  # type: ignore[arg-type]
        assert (good.version, bad.version) == ("1", "2")
    get_settings.cache_clear()
    yield Registered(root, root / "mlflow.db", eval_csv)


@pytest.fixture
def reg(registered: Registered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on a private copy of the registry with v1 (good) and v2 (shuffled labels)."""
    db = tmp_path / "registry-copy.db"
    shutil.copy(registered.db, db)
    monkeypatch.setenv("TICKET_URGENCY_STORAGE", str(registered.root / "store"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    get_settings.cache_clear()
    return get_settings()


def _prod(settings: Settings) -> tuple[str | None, str | None]:
    """(version in stage Production, version behind alias production)."""
    client = MlflowClient(settings.mlflow_tracking_uri)
    staged = [
        str(mv.version)
        for mv in client.search_model_versions(f"name = '{NAME}'")
        if mv.current_stage == "Production"
    ]
    assert len(staged) <= 1
    try:
        alias = str(client.get_model_version_by_alias(NAME, "production").version)
    except mlflow.exceptions.MlflowException:
        alias = None
    return (staged[0] if staged else None), alias


def _cli_json(*args: str) -> dict[str, object]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert isinstance(out, dict)
    return out


@pytest.mark.parametrize(
    ("labels", "counts", "expected"),
    [
        (["low", "medium", "high", "critical"], None, "critical"),
        (["normal", "urgent"], None, "urgent"),
        (["Minor", "Major", "Blocker"], None, "Blocker"),
        (["P3", "P1", "P2"], None, "P1"),
        (["sev2", "sev1"], None, "sev1"),
        (["red", "green", "blue"], {"red": 50, "green": 5, "blue": 20}, "green"),
        (["b", "a"], None, "a"),
    ],
)
def test_most_urgent_label(labels: list[str], counts: dict[str, int] | None, expected: str) -> None:
    assert most_urgent_label(labels, counts) == expected


def test_gate_rule() -> None:
    champ = Scores("1", macro_f1=0.80, urgent_recall=0.70)
    assert gate(Scores("2", 0.795, 0.70), champ, 0.01, 0.05)[0]  # within tolerance
    assert not gate(Scores("2", 0.78, 0.90), champ, 0.01, 0.05)[0]  # macro-F1 too low
    ok, reason = gate(Scores("2", 0.85, 0.64), champ, 0.01, 0.05)
    assert not ok and "recall" in reason  # urgent recall dropped 0.06
    assert gate(Scores("2", 0.85, 0.66), champ, 0.01, 0.05)[0]  # dropped 0.04
    assert gate(Scores("2", 0.85, None), champ, 0.01, 0.05)[0]  # class absent: F1 decides


def test_first_model_always_promotes_even_a_bad_one(reg: Settings) -> None:
    decision = promote(reg, version=2)
    assert decision.promoted and decision.decision == "promoted"
    assert "first model" in decision.reason
    assert _prod(reg) == ("2", "2")


def test_gate_promotes_the_better_model_and_records_tags(reg: Settings) -> None:
    promote(reg, version=2)  # shuffled-label model in Production
    out = _cli_json("promote")  # challenger = newest... is v2 itself: nothing to do
    assert out["decision"] == "unchanged" and not out["promoted"]
    out = _cli_json("promote", "--version", "1")
    assert out["promoted"] is True and out["decision"] == "promoted"
    assert out["champion_version"] == "2" and out["production_version"] == "1"
    assert isinstance(out["challenger_macro_f1"], float)
    assert isinstance(out["champion_macro_f1"], float)
    assert out["challenger_macro_f1"] > out["champion_macro_f1"] + 0.2
    assert out["most_urgent_label"] == "critical"
    assert _prod(reg) == ("1", "1")
    client = MlflowClient(reg.mlflow_tracking_uri)
    tags = client.get_model_version(NAME, "1").tags
    assert tags["promotion.decision"] == "promoted"
    assert tags["promotion.previous_version"] == "2"
    # the tag is written with 6 decimals: equal up to that rounding
    assert float(tags["promotion.champion_macro_f1"]) == pytest.approx(
        out["champion_macro_f1"], rel=0, abs=5e-7
    )
    assert tags["promotion.timestamp"]
    assert client.get_model_version(NAME, "2").current_stage == "Archived"


def test_gate_refuses_a_model_trained_on_shuffled_labels(reg: Settings) -> None:
    promote(reg, version=1)
    result = runner.invoke(app, ["promote"])  # newest = v2, shuffled labels
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("refused:") and "macro-F1" in result.stdout
    assert _prod(reg) == ("1", "1")
    tags = MlflowClient(reg.mlflow_tracking_uri).get_model_version(NAME, "2").tags
    assert tags["promotion.decision"] == "refused"
    assert tags["promotion.previous_version"] == "1"


def test_force_then_rollback_restores_the_previous_version(reg: Settings) -> None:
    promote(reg, version=1)
    out = _cli_json("promote", "--version", "2", "--force")
    assert out["promoted"] is True and out["decision"] == "forced" and out["forced"] is True
    assert _prod(reg) == ("2", "2")
    out = _cli_json("rollback")
    assert out == {**out, "previous_version": "2", "production_version": "1"}
    assert _prod(reg) == ("1", "1")
    client = MlflowClient(reg.mlflow_tracking_uri)
    assert client.get_model_version(NAME, "2").tags["rollback.replaced_by"] == "1"
    assert client.get_model_version(NAME, "1").tags["rollback.restored_from"] == "2"
    result = runner.invoke(app, ["rollback"])  # v1 replaced nothing
    assert result.exit_code == 2 and "nothing to roll back" in result.stderr


def test_both_production_uris_load_the_promoted_version(
    reg: Settings, registered: Registered
) -> None:
    promote(reg, version=1)
    promote(reg, version=2, force=True)
    raw = generate_dataset(20, 0, seed=3)[0][list(FEATURE_COLUMNS)]
    mlflow.set_tracking_uri(reg.mlflow_tracking_uri)
    expected = mlflow.sklearn.load_model(f"models:/{NAME}/2").predict(raw)
    for uri in (f"models:/{NAME}/Production", f"models:/{NAME}@production"):
        assert str(resolve_version(reg, uri).version) == "2"
        loaded = load_model(reg, uri)
        assert loaded.version == "2" and loaded.uri == f"models:/{NAME}/2"
        np.testing.assert_array_equal(loaded.model.predict(raw), expected)
        np.testing.assert_array_equal(mlflow.pyfunc.load_model(uri).predict(raw), expected)


def test_promote_eval_path_scores_on_that_file(reg: Settings, registered: Registered) -> None:
    decision = promote(reg, version=1, eval_path=str(registered.eval_csv))
    assert decision.eval_rows == 60 and decision.eval_source == str(registered.eval_csv)


def test_stored_eval_set_is_the_newest_fifth_of_combined(reg: Settings) -> None:
    decision = promote(reg, version=1)
    assert decision.eval_rows == 130  # 20 % of 500 reference + 150 labelled new rows
    assert "newest 130 labelled rows" in decision.eval_source


def test_errors_without_models_are_one_line(tmp_path: Path) -> None:
    for args in (["promote"], ["rollback"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.stderr
    with pytest.raises(UserFacingError, match="resolves to no registered model version"):
        resolve_version(get_settings(), f"models:/{NAME}/Production")
    with pytest.raises(UserFacingError, match="not of the form"):
        resolve_version(get_settings(), "runs:/abc/model")
    assert production_version(get_settings()) is None


def test_unknown_version_is_a_user_error(reg: Settings) -> None:
    result = runner.invoke(app, ["promote", "--version", "9"])
    assert result.exit_code == 2 and "resolves to no registered model version" in result.stderr
    with pytest.raises(UserFacingError):
        rollback(reg)
