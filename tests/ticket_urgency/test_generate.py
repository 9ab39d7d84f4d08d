"""Tests for the synthetic ticket generator (ticket_urgency.generate)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from ticket_urgency.generate import (
    COLUMNS,
    DRIFT_SCENARIOS,
    LABELS,
    SOURCES,
    TIERS,
    TOPIC_KEYWORDS,
    _typo,
    generate_dataset,
    generate_tickets,
)

REF_ROWS = 3000
NEW_ROWS = 2000
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
TOPIC_RE = re.compile("|".join(rf"\b{re.escape(k)}\b" for k in TOPIC_KEYWORDS), re.IGNORECASE)

# Total-variation distance between two category mixes of REF_ROWS vs NEW_ROWS rows
# from the same distribution is ~0.03 on average (5 categories, sd ~0.02 each);
# the drifted mixes are ~0.28 apart. The thresholds sit well clear of both.
SAME_MIX_MAX_TV = 0.08
DRIFTED_MIN_TV = 0.18


def _tv(a: pd.Series, b: pd.Series, categories: tuple[str, ...]) -> float:
    pa = a.value_counts(normalize=True).reindex(list(categories), fill_value=0.0)
    pb = b.value_counts(normalize=True).reindex(list(categories), fill_value=0.0)
    return float((pa - pb).abs().sum() / 2)


def _topic_share(df: pd.DataFrame) -> float:
    hit = df["title"].str.contains(TOPIC_RE) | df["description"].str.contains(TOPIC_RE)
    return float(hit.mean())


@pytest.fixture(scope="module")
def datasets() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    return {d: generate_dataset(REF_ROWS, NEW_ROWS, drift=d, seed=11) for d in DRIFT_SCENARIOS}


@pytest.fixture(scope="module")
def reference(datasets: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    return datasets["none"][0]


# --------------------------------------------------------------------------- #
# Determinism
# --------------------------------------------------------------------------- #
def test_same_seed_gives_identical_frames() -> None:
    pd.testing.assert_frame_equal(generate_tickets(800, seed=3), generate_tickets(800, seed=3))
    ref_a, new_a = generate_dataset(500, 200, drift="all", seed=5)
    ref_b, new_b = generate_dataset(500, 200, drift="all", seed=5)
    pd.testing.assert_frame_equal(ref_a, ref_b)
    pd.testing.assert_frame_equal(new_a, new_b)


def test_different_seed_differs() -> None:
    a = generate_tickets(300, seed=1)
    b = generate_tickets(300, seed=2)
    assert (a["title"] != b["title"]).mean() > 0.5
    assert (a["description"] != b["description"]).mean() > 0.5
    assert set(a["ticket_id"]).isdisjoint(b["ticket_id"])


def test_reference_and_new_use_different_seeds() -> None:
    ref, new = generate_dataset(400, 400, seed=0)
    assert (ref["title"].to_numpy() != new["title"].to_numpy()).mean() > 0.5


def test_global_random_state_untouched() -> None:
    np.random.seed(123)
    state = np.random.get_state()
    generate_dataset(200, 100, drift="all", seed=4)
    after = np.random.get_state()
    assert state[0] == after[0]
    assert np.array_equal(state[1], after[1])
    assert state[2:] == after[2:]


# --------------------------------------------------------------------------- #
# Schema, ids and timestamps
# --------------------------------------------------------------------------- #
def test_columns_and_values(datasets: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> None:
    for ref, new in datasets.values():
        for df in (ref, new):
            assert tuple(df.columns) == COLUMNS
            assert set(df["source"]) <= set(SOURCES)
            assert set(df["customer_tier"]) <= set(TIERS)
            assert set(df["label_urgency"]) <= set(LABELS)
            assert df["title"].str.len().min() > 0
            assert df.notna().all().all()
    ref, new = datasets["none"]
    assert len(ref) == REF_ROWS
    assert len(new) == NEW_ROWS


def test_ids_unique_across_reference_and_new(
    datasets: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    for ref, new in datasets.values():
        ids = pd.concat([ref["ticket_id"], new["ticket_id"]])
        assert ids.is_unique
        assert ref["ticket_id"].str.startswith("R-").all()
        assert new["ticket_id"].str.startswith("N-").all()


def test_created_at_iso_utc_increasing_and_new_after_reference(
    datasets: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    for ref, new in datasets.values():
        assert ref["created_at"].str.match(ISO_UTC).all()
        assert new["created_at"].str.match(ISO_UTC).all()
        ref_ts = pd.to_datetime(ref["created_at"], utc=True)
        new_ts = pd.to_datetime(new["created_at"], utc=True)
        assert ref_ts.is_monotonic_increasing and ref_ts.is_unique
        assert new_ts.is_monotonic_increasing and new_ts.is_unique
        assert new_ts.min() > ref_ts.max()


def test_start_is_respected_and_timezones_normalised() -> None:
    start = datetime(2025, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    df = generate_tickets(50, seed=1, start=start)
    ts = pd.to_datetime(df["created_at"], utc=True)
    assert ts.min() > pd.Timestamp("2025-06-01T10:00:00Z")
    assert ts.min() < pd.Timestamp("2025-06-01T12:00:00Z")
    naive = generate_tickets(50, seed=1, start=datetime(2025, 6, 1, 10, 0))
    pd.testing.assert_frame_equal(df, naive)
    default = generate_tickets(5, seed=1)
    assert pd.Timestamp(default["created_at"].iloc[0]) > datetime(2024, 1, 1, tzinfo=UTC)


def test_zero_rows_and_invalid_arguments() -> None:
    empty = generate_tickets(0)
    assert tuple(empty.columns) == COLUMNS
    assert len(empty) == 0
    ref, new = generate_dataset(0, 3)
    assert len(ref) == 0 and len(new) == 3
    with pytest.raises(ValueError):
        generate_tickets(-1)
    with pytest.raises(ValueError):
        generate_tickets(10, drift="weather")
    with pytest.raises(ValueError):
        generate_dataset(10, 10, drift="weather")
    with pytest.raises(ValueError):
        generate_tickets(10, seed=-5)


# --------------------------------------------------------------------------- #
# Realism
# --------------------------------------------------------------------------- #
def test_label_mix(reference: pd.DataFrame) -> None:
    share = reference["label_urgency"].value_counts(normalize=True)
    assert set(share.index) == set(LABELS)
    expected = {"low": 0.35, "medium": 0.35, "high": 0.20, "critical": 0.10}
    for label, target in expected.items():
        assert abs(share[label] - target) < 0.05, (label, share[label])


def test_empty_and_very_long_descriptions(reference: pd.DataFrame) -> None:
    lengths = reference["description"].str.len()
    assert 0.01 <= (lengths == 0).mean() <= 0.06
    n_long = int((lengths > 5_000).sum())
    assert 5 <= n_long <= 0.03 * len(reference)
    assert lengths.max() <= 60_000
    assert (lengths[(lengths > 0) & (lengths <= 5_000)] > 20).all()


def test_near_duplicate_titles_and_typos(reference: pd.DataFrame) -> None:
    titles = reference["title"]
    assert titles.nunique() < 0.9 * len(titles)
    normalised = titles.str.lower().str.replace(r"^(re|fwd|fw|follow-up): ", "", regex=True)
    assert normalised.nunique() < titles.nunique()
    assert titles.str.match(r"^(Re|RE|Fwd|FW): ").any()


def test_typos_are_small_random_edits(reference: pd.DataFrame) -> None:
    text = "The export failed again this morning"
    grid = [(a / 10, b / 10, 0.5) for a in range(10) for b in range(10)]
    edited = [_typo(text, *r) for r in grid]
    assert all(abs(len(e) - len(text)) <= 1 for e in edited)
    assert sum(e != text for e in edited) > 0.8 * len(grid)
    assert len(set(edited)) > 20
    # In generated data, typos show up as words that occur only once in thousands of
    # template-based tickets (names, products and error codes repeat many times).
    short = reference.loc[reference["description"].str.len() <= 5_000]
    tokens = (short["title"] + " " + short["description"]).str.lower().str.findall(r"[a-z]{3,}")
    counts = Counter(word for row in tokens for word in row)
    with_typo = tokens.map(lambda row: any(counts[w] == 1 for w in row))
    assert 0.03 < with_typo.mean() < 0.25, with_typo.mean()


def test_vocabulary_overlaps_between_classes(reference: pd.DataFrame) -> None:
    text = (reference["title"] + " " + reference["description"]).str.lower()
    for word in ("urgent", "down", "question", "please"):
        labels = set(reference.loc[text.str.contains(rf"\b{word}\b"), "label_urgency"])
        assert len(labels) >= 3, (word, labels)


def test_source_and_tier_carry_a_little_signal() -> None:
    df = generate_tickets(20_000, seed=2)
    urgent = df["label_urgency"].isin(["high", "critical"])
    by_source = urgent.groupby(df["source"]).mean()
    by_tier = urgent.groupby(df["customer_tier"]).mean()
    assert by_source["phone"] > by_source["web"] + 0.05
    assert by_tier["Platinum"] > by_tier["Free"] + 0.05
    assert by_tier["Platinum"] < 0.7  # a hint, not the answer


# --------------------------------------------------------------------------- #
# Drift
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("drift", DRIFT_SCENARIOS)
def test_drift_scenarios_shift_only_their_distribution(
    datasets: dict[str, tuple[pd.DataFrame, pd.DataFrame]], drift: str
) -> None:
    ref, new = datasets[drift]
    source_tv = _tv(ref["source"], new["source"], SOURCES)
    tier_tv = _tv(ref["customer_tier"], new["customer_tier"], TIERS)
    topic = _topic_share(new)

    assert _topic_share(ref) == 0.0
    if drift in ("source", "all"):
        assert source_tv > DRIFTED_MIN_TV, source_tv
        chat_api = new["source"].isin(["chat", "api"]).mean()
        assert chat_api - ref["source"].isin(["chat", "api"]).mean() > 0.18
    else:
        assert source_tv < SAME_MIX_MAX_TV, source_tv
    if drift in ("tier", "all"):
        assert tier_tv > DRIFTED_MIN_TV, tier_tv
    else:
        assert tier_tv < SAME_MIX_MAX_TV, tier_tv
    if drift in ("topic", "all"):
        assert 0.25 < topic < 0.45, topic
    else:
        assert topic == 0.0


def test_topic_drift_is_more_urgent(
    datasets: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
) -> None:
    ref, new = datasets["topic"]
    hit = new["title"].str.contains(TOPIC_RE) | new["description"].str.contains(TOPIC_RE)
    urgent_topic = new.loc[hit, "label_urgency"].isin(["high", "critical"]).mean()
    urgent_ref = ref["label_urgency"].isin(["high", "critical"]).mean()
    assert urgent_topic > urgent_ref + 0.2
    assert new.loc[hit, "label_urgency"].nunique() == len(LABELS)


def test_no_drift_keeps_label_mix(datasets: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> None:
    ref, new = datasets["none"]
    assert _tv(ref["label_urgency"], new["label_urgency"], LABELS) < SAME_MIX_MAX_TV


# --------------------------------------------------------------------------- #
# Learnability
# --------------------------------------------------------------------------- #
def test_label_is_learnable_but_not_trivial(reference: pd.DataFrame) -> None:
    df = reference.assign(
        text=reference["title"] + " \n " + reference["description"].str.slice(0, 1000)
    )
    train, test = train_test_split(df, test_size=0.25, random_state=0, stratify=df["label_urgency"])
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("text", TfidfVectorizer(ngram_range=(1, 2), max_features=5000), "text"),
                        (
                            "cat",
                            OneHotEncoder(handle_unknown="ignore"),
                            ["source", "customer_tier"],
                        ),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=1000, class_weight="balanced")),
        ]
    )
    # One BLAS thread: on a busy 2-core machine OpenBLAS threads oversubscribe and
    # make this tiny fit 20x slower.
    with threadpool_limits(1):
        model.fit(train, train["label_urgency"])
    score = f1_score(test["label_urgency"], model.predict(test), average="macro")
    assert 0.6 < score < 0.97, score
