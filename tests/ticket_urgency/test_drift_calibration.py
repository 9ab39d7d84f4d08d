"""Calibration of the drift decision rule with many seeded samples from ``generate``.

The rule (significant after Holm correction AND material) is applied directly to features,
without NannyML, so that hundreds of samples stay fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ticket_urgency.drift import DriftConfig, compute_drift, decide_drift, holm
from ticket_urgency.generate import generate_dataset
from ticket_urgency.text_features import TOPIC_FEATURE, TextFeaturizer

SEEDS = range(100)
MIN_ROWS = 500  # the smallest sample that gets a verdict


def shift_mix(values: pd.Series, points: float, rng: np.random.Generator) -> pd.Series:
    """Move ``points`` of the mix from the most common category to the rarest one."""
    counts = values.value_counts()
    src, dst = counts.index[0], counts.index[-1]
    n_move = int(round(points * len(values)))
    candidates = np.flatnonzero(values.to_numpy() == src)
    assert len(candidates) >= n_move, "the most common category is too small to shift"
    moved = values.copy()
    moved.iloc[rng.choice(candidates, n_move, replace=False)] = dst
    return moved


@pytest.fixture(scope="module")
def featurizer() -> TextFeaturizer:
    fit_rows, _ = generate_dataset(2000, 0, seed=10_000)
    return TextFeaturizer().fit(fit_rows)


@pytest.fixture(scope="module")
def samples(featurizer: TextFeaturizer) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """100 seeded (reference, new) feature frames of the minimum size, same distribution."""
    out = []
    for seed in SEEDS:
        ref, new = generate_dataset(MIN_ROWS, MIN_ROWS, seed=seed)
        frames = []
        for df in (ref, new):
            feats = featurizer.transform(df)
            feats["source"] = df["source"].to_numpy()
            feats["customer_tier"] = df["customer_tier"].to_numpy()
            frames.append(feats)
        out.append((frames[0], frames[1]))
    return out


def _alerts(ref: pd.DataFrame, new: pd.DataFrame, featurizer: TextFeaturizer) -> list[str]:
    res = decide_drift(
        ref, new, ["source", "customer_tier", TOPIC_FEATURE], featurizer.feature_names
    )
    return [name for name, r in res.items() if r["alert"]]


def test_false_alarm_rate_at_most_5_percent(
    samples: list[tuple[pd.DataFrame, pd.DataFrame]], featurizer: TextFeaturizer
) -> None:
    alarms = sum(bool(_alerts(ref, new, featurizer)) for ref, new in samples)
    assert alarms / len(samples) <= 0.05, f"{alarms} false alarms in {len(samples)} samples"


def test_20_point_source_shift_detected_at_least_95_percent(
    samples: list[tuple[pd.DataFrame, pd.DataFrame]], featurizer: TextFeaturizer
) -> None:
    hits = 0
    for seed, (ref, new) in zip(SEEDS, samples, strict=True):
        shifted = new.copy()
        shifted["source"] = shift_mix(new["source"], 0.20, np.random.default_rng(seed))
        hits += "source" in _alerts(ref, shifted, featurizer)
    assert hits / len(samples) >= 0.95, f"detected {hits} of {len(samples)}"


def test_small_shift_is_significant_but_not_material_on_large_samples() -> None:
    """With 200k rows a 3-point shift is highly significant, yet below the threshold."""
    rng = np.random.default_rng(0)
    cats = np.array(["a", "b", "c", "d"])
    ref = pd.DataFrame({"c": rng.choice(cats, 200_000, p=[0.4, 0.3, 0.2, 0.1])})
    new = pd.DataFrame({"c": rng.choice(cats, 200_000, p=[0.37, 0.3, 0.2, 0.13])})
    res = decide_drift(ref, new, ["c"], [])["c"]
    assert res["significant"] and not res["material"] and not res["alert"]
    assert res["effect_size"] == pytest.approx(0.03, abs=0.005)
    ref_x = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    new_x = pd.DataFrame({"x": rng.normal(0.05, 1, 200_000)})
    res_x = decide_drift(ref_x, new_x, [], ["x"])["x"]
    assert res_x["significant"] and not res_x["alert"]


def test_large_shift_on_tiny_sample_is_not_significant() -> None:
    """Ten rows can look very different by chance: effect large, but not significant."""
    ref = pd.DataFrame({"c": ["a"] * 6 + ["b"] * 4})
    new = pd.DataFrame({"c": ["a"] * 3 + ["b"] * 7})
    res = decide_drift(ref, new, ["c"], [])["c"]
    assert res["material"] and not res["significant"] and not res["alert"]


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("none", set()),
        ("source", {"source"}),
        ("tier", {"customer_tier"}),
        ("topic", {"unseen_token_share"}),
        ("all", {"source", "customer_tier", "unseen_token_share"}),
    ],
)
def test_each_generate_scenario_alerts_on_the_feature_it_changed(
    scenario: str, expected: set[str]
) -> None:
    reference, new = generate_dataset(2000, 800, drift=scenario, seed=42)
    report = compute_drift(reference, new, DriftConfig(nannyml=False))
    alerted = set(report.alerted_features)
    assert expected <= alerted
    assert report.drift_detected == bool(expected)
    if scenario in ("none", "source", "tier"):
        # Nothing else alerts: the text features do not react to the channel or tier mix.
        assert alerted == expected
    if scenario == "topic":
        assert not alerted & {"source", "customer_tier"}
