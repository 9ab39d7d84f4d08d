"""The urgency pipeline on tiny data: structure, estimator rules, robustness to odd input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from ticket_urgency.contract import FEATURE_COLUMNS
from ticket_urgency.generate import generate_tickets
from ticket_urgency.model import (
    TicketPreprocessor,
    build_baseline_pipeline,
    build_pipeline,
    clean_text,
    resolve_params,
)

X = list(FEATURE_COLUMNS)


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return generate_tickets(400, seed=11)


@pytest.fixture(scope="module")
def fitted(tickets: pd.DataFrame) -> Pipeline:
    pipe = build_pipeline({"char_max_features": 5000})
    return pipe.fit(tickets[X], tickets["label_urgency"])


def test_build_pipeline_is_unfitted_and_has_the_documented_steps() -> None:
    pipe = build_pipeline()
    assert [name for name, _ in pipe.steps] == ["prep", "features", "clf"]
    assert not hasattr(pipe[-1], "classes_")
    assert pipe.get_params()["prep__max_chars"] == 5000


def test_params_override_and_unknown_params_are_rejected() -> None:
    pipe = build_pipeline({"max_chars": 300, "C": 2.0})
    assert pipe.get_params()["prep__max_chars"] == 300
    assert pipe.named_steps["clf"].estimator.C == 2.0
    with pytest.raises(ValueError, match="unknown model parameter 'nope'"):
        build_pipeline({"nope": 1})
    with pytest.raises(ValueError, match="classifier"):
        resolve_params({"classifier": "forest"})


def test_fitted_pipeline_predicts_known_labels_with_probabilities(
    fitted: Pipeline, tickets: pd.DataFrame
) -> None:
    pred = fitted.predict(tickets[X].head(50))
    assert set(pred) <= set(tickets["label_urgency"])
    proba = fitted.predict_proba(tickets[X].head(50))
    assert proba.shape == (50, len(fitted.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    # It learned something: training accuracy well above the majority share.
    acc = (fitted.predict(tickets[X]) == tickets["label_urgency"]).mean()
    majority = tickets["label_urgency"].value_counts(normalize=True).max()
    assert acc > majority + 0.2


def test_unseen_categories_empty_and_huge_texts_and_missing_values(fitted: Pipeline) -> None:
    big = "Traceback (most recent call last):\n  File 'x.py', line 1\n" * 900  # ~50 kB
    assert len(big) > 50_000
    odd = pd.DataFrame(
        {
            "title": ["", "Système en panne 🚨", "x", None],
            "description": [big, "", "ünïcödé ☃ " * 10, np.nan],
            "source": ["carrier-pigeon", "email", "", None],
            "customer_tier": ["Diamond", "gold", "Free", None],
            "extra_column": [1, 2, 3, 4],
        }
    )
    pred = fitted.predict(odd)
    assert len(pred) == 4
    assert set(pred) <= set(fitted.classes_)
    assert np.isfinite(fitted.predict_proba(odd)).all()


def test_long_text_is_truncated_to_the_cap(fitted: Pipeline) -> None:
    cap = fitted.get_params()["prep__max_chars"]
    head = "our production database is down and customers cannot log in. " * 100
    head = head[:cap]
    row = {"title": "help", "source": "email", "customer_tier": "Gold"}
    short = pd.DataFrame([{**row, "description": head}])
    long = pd.DataFrame([{**row, "description": head + " totally unrelated tail words" * 2000}])
    np.testing.assert_allclose(fitted.predict_proba(short), fitted.predict_proba(long))


def test_preprocessor_follows_estimator_rules(tickets: pd.DataFrame) -> None:
    prep = TicketPreprocessor(max_chars=200, title_repeat=1)
    assert prep.get_params() == {"max_chars": 200, "title_repeat": 1, "normalize": True}
    assert prep.set_params(max_chars=300) is prep and prep.max_chars == 300
    copy = clone(prep)
    assert copy is not prep and copy.get_params() == prep.get_params()
    assert prep.fit(tickets[X]) is prep
    out = prep.transform(tickets[X].head(20))
    assert list(out.columns) == ["text", "source", "customer_tier"]
    assert out["text"].str.len().max() <= 2 * 300 + 10
    cols = {c: list(tickets[c].head(20)) for c in X}
    assert prep.transform_columns(cols) == {c: list(out[c]) for c in out.columns}
    with pytest.raises(ValueError, match="missing column"):
        prep.transform(tickets[["title", "description"]])


def test_clean_text_masks_volatile_tokens() -> None:
    text = "Mail Bob@Example.com about https://x.io/a?b=1 order 1234567 id deadbeefcafe1234"
    cleaned = clean_text(text, 1000)
    assert "emailtoken" in cleaned and "urltoken" in cleaned
    assert "numtoken" in cleaned and "hextoken" in cleaned
    assert "bob" not in cleaned and cleaned == cleaned.lower()
    assert clean_text("abcdef", 3) == "abc"


def test_baseline_is_the_original_design(tickets: pd.DataFrame) -> None:
    base = build_baseline_pipeline().fit(tickets[X], tickets["label_urgency"])
    word = base.named_steps["features"].named_transformers_["word"]
    assert word.max_features == 5000 and word.ngram_range == (1, 2)
    assert base.named_steps["clf"].class_weight == "balanced"
