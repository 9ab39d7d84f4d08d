"""Text-derived features: shapes, meaning of each feature, no fit/compare leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ticket_urgency.generate import generate_dataset
from ticket_urgency.text_features import (
    NUMERIC_FEATURES,
    TOPIC_FEATURE,
    TextFeatureConfig,
    TextFeaturizer,
    split_reference,
)


def _frame(titles: list[str], descriptions: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"title": titles, "description": descriptions})


@pytest.fixture(scope="module")
def fitted() -> tuple[TextFeaturizer, pd.DataFrame, pd.DataFrame]:
    reference, new = generate_dataset(1200, 300, seed=5)
    return TextFeaturizer().fit(reference.iloc[:600]), reference.iloc[600:], new


def test_columns_and_index(fitted: tuple[TextFeaturizer, pd.DataFrame, pd.DataFrame]) -> None:
    featurizer, compare, _ = fitted
    out = featurizer.transform(compare)
    assert list(out.columns) == [*featurizer.feature_names, TOPIC_FEATURE]
    assert out.index.equals(compare.index)
    assert set(NUMERIC_FEATURES) <= set(out.columns)
    assert out[featurizer.feature_names].notna().all().all()
    assert out[TOPIC_FEATURE].nunique() > 1


def test_lengths_words_and_urgent_share(
    fitted: tuple[TextFeaturizer, pd.DataFrame, pd.DataFrame],
) -> None:
    featurizer, _, _ = fitted
    df = _frame(
        ["Site is DOWN", "Question about invoices", ""],
        ["Outage, urgent, asap!", "How do I download my invoice please", "x" * 50_000],
    )
    out = featurizer.transform(df)
    assert out["title_chars"].tolist() == [12, 23, 0]
    assert out["title_words"].tolist() == [3, 3, 0]
    assert out["description_chars"].iloc[2] == 50_000
    assert out["description_words"].tolist()[:2] == [3, 7]
    # urgent words: down, outage, urgent, asap (4 of 6 tokens); none in the second row.
    assert out["urgent_share"].iloc[0] == pytest.approx(4 / 6)
    assert out["urgent_share"].iloc[1] == 0.0


def test_unseen_tokens_measure_new_vocabulary(
    fitted: tuple[TextFeaturizer, pd.DataFrame, pd.DataFrame],
) -> None:
    featurizer, compare, _ = fitted
    known = featurizer.transform(compare)["unseen_token_share"].mean()
    novel = featurizer.transform(
        _frame(["Zyxqv frobnicator glorp"], ["Quuxwidget blarg snorfle wibblemax"])
    )["unseen_token_share"].iloc[0]
    assert novel == pytest.approx(1.0)
    assert known < 0.2


def test_same_distribution_features_match(
    fitted: tuple[TextFeaturizer, pd.DataFrame, pd.DataFrame],
) -> None:
    """Held-out reference rows and new rows of the same distribution look alike."""
    featurizer, compare, new = fitted
    a, b = featurizer.transform(compare), featurizer.transform(new)
    for col in featurizer.feature_names:
        assert abs(a[col].median() - b[col].median()) <= 0.25 * (a[col].std() + 1e-9) + 1.0


def test_split_reference_is_disjoint_and_complete() -> None:
    fit, compare = split_reference(1000, TextFeatureConfig(fit_rows=300))
    assert len(fit) == 300 and len(compare) == 700
    assert not set(fit) & set(compare)
    assert sorted([*fit, *compare]) == list(range(1000))
    small_fit, small_cmp = split_reference(100, TextFeatureConfig())
    assert len(small_fit) == 50 and len(small_cmp) == 50


def test_transform_before_fit_and_empty_frames() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        TextFeaturizer().transform(_frame(["a"], ["b"]))
    reference, _ = generate_dataset(200, 0, seed=1)
    out = TextFeaturizer().fit(reference).transform(reference.iloc[:0])
    assert len(out) == 0
    assert np.isfinite(out[list(NUMERIC_FEATURES)].to_numpy()).all()
