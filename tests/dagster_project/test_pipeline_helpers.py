"""The pure helpers behind the Dagster checks and the drift sensor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ticket_urgency.pipeline import (
    decide_retrain,
    duplicate_ids,
    label_mix_problems,
    majority_baseline,
    raw_duplicate_ids,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _decide(**kw: object) -> tuple[bool, bool, str]:
    args: dict[str, object] = {
        "report_key": "r2",
        "drift_detected": True,
        "last_report_key": "r1",
        "last_request_at": None,
        "now": NOW,
        "cooldown_hours": 6.0,
    }
    args.update(kw)
    d = decide_retrain(**args)  # type: ignore[arg-type]
    return d.request, d.handled, d.reason


def test_decide_retrain() -> None:
    assert _decide()[:2] == (True, True)
    assert _decide(report_key=None)[0] is False
    assert _decide(last_report_key="r2")[0] is False
    assert _decide(drift_detected=False)[:2] == (False, True)
    cooling = _decide(last_request_at=NOW - timedelta(hours=1))
    assert cooling[:2] == (False, False) and "cooling down until 2026-03-01T17:00:00" in cooling[2]
    assert _decide(last_request_at=NOW - timedelta(hours=6))[0] is True
    assert _decide(last_request_at=NOW, cooldown_hours=0)[0] is True


def test_label_mix_problems() -> None:
    assert label_mix_problems({"a": 50, "b": 50}) == ([], [])
    errors, _ = label_mix_problems({"a": 10})
    assert errors and "need 2" in errors[0]
    _, warnings = label_mix_problems({"a": 990, "b": 5, "c": 5})
    assert any("'a'" in w and "> 95%" in w for w in warnings)
    assert any("'b'" in w and "< 1%" in w for w in warnings)


def test_majority_baseline_matches_sklearn() -> None:
    from sklearn.metrics import accuracy_score, f1_score

    labels = ["low"] * 6 + ["high"] * 3 + ["critical"] + [""]
    base = majority_baseline(labels)
    y = [x for x in labels if x]
    pred = ["low"] * len(y)
    assert base["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert base["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert majority_baseline([]) == {"accuracy": 0.0, "macro_f1": 0.0}


def test_duplicate_ids() -> None:
    df = pd.DataFrame({"ticket_id": ["a", "b", "a", "c", "b", "a"]})
    assert duplicate_ids(df) == ["a", "b"]
    assert raw_duplicate_ids(b"ticket_id,title\nx,1\ny,2\nx,3\n") == ["x"]
    assert raw_duplicate_ids(b"title\nno ids\n") == []
