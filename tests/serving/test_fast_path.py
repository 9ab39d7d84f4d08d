"""The columnar fast path gives the same probabilities as the pipeline's own predict_proba."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from ticket_urgency.contract import FEATURE_COLUMNS
from ticket_urgency.predictor import ColumnarPredictor, ModelRef, wrap_model

pytestmark = pytest.mark.timeout(600)


def _columns(frame: pd.DataFrame) -> dict[str, list[object]]:
    return {c: frame[c].tolist() for c in FEATURE_COLUMNS}


def _assert_same(pipe: Pipeline, frame: pd.DataFrame) -> None:
    expected = pipe.predict_proba(frame[list(FEATURE_COLUMNS)])
    got = ColumnarPredictor(pipe).predict_proba(_columns(frame))
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # bit for bit
    # and row by row, as single requests arrive (compared with the pipeline on that one row:
    # a dense matrix product of one row may round differently from a batch in either path)
    fast = ColumnarPredictor(pipe)
    for i in range(0, len(frame), 97):
        one = frame.iloc[[i]]
        np.testing.assert_array_equal(
            fast.predict_proba(_columns(one)), pipe.predict_proba(one[list(FEATURE_COLUMNS)])
        )


def _joined(frame: pd.DataFrame) -> pd.Series:
    return frame["title"].fillna("") + " " + frame["description"].fillna("")


def test_original_design_matches_on_thousands_of_tickets(
    fitted: dict[str, Pipeline], tickets: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, new = tickets
    assert len(new) >= 3000
    for pipe in fitted.values():
        _assert_same(pipe, new)


def test_project_model_matches(tickets: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from ticket_urgency.model import build_pipeline

    ref, new = tickets
    small = {"calibration_cv": 2, "word_max_features": 4000, "char_max_features": 6000}
    x, y = ref[list(FEATURE_COLUMNS)].iloc[:1000], ref["label_urgency"].iloc[:1000]
    pipe = build_pipeline(small).fit(x, y)  # calibrated linear SVM on word + char TF-IDF
    _assert_same(pipe, new.iloc[:2000])
    fast = wrap_model(ModelRef("u", "m", "1", None), pipe).fast
    assert fast is not None and fast.direct  # scored from flat arrays, no scipy.sparse


def test_the_original_design_is_scored_directly(fitted: dict[str, Pipeline]) -> None:
    assert all(ColumnarPredictor(pipe).direct for pipe in fitted.values())


VECTORIZERS = {
    "word-1-3-lowercase-l1": lambda: TfidfVectorizer(ngram_range=(1, 3), norm="l1"),
    "word-2-only-counts": lambda: CountVectorizer(ngram_range=(2, 2), lowercase=False),
    "binary-counts": lambda: CountVectorizer(binary=True, dtype=np.float32),
    "char-3-4-no-idf": lambda: TfidfVectorizer(analyzer="char", ngram_range=(3, 4), use_idf=False),
    "char-wb-1-3-no-norm": lambda: TfidfVectorizer(
        analyzer="char_wb", ngram_range=(1, 3), norm=None, max_features=500
    ),
}


@pytest.mark.parametrize("name", sorted(VECTORIZERS))
def test_vectoriser_variants_are_scored_directly_and_match(
    name: str, tickets: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    from ticket_urgency.model import TicketPreprocessor

    ref, new = tickets
    features = ColumnTransformer(
        [
            ("text", VECTORIZERS[name](), "text"),
            ("meta", OneHotEncoder(handle_unknown="ignore"), ["source", "customer_tier"]),
        ],
        sparse_threshold=1.0,  # always sparse (a dense product would round differently)
    )
    pipe = Pipeline(
        [
            ("prep", TicketPreprocessor(max_chars=400)),
            ("features", features),
            ("clf", LogisticRegression(max_iter=300)),
        ]
    )
    pipe.fit(ref[list(FEATURE_COLUMNS)].iloc[:600], ref["label_urgency"].iloc[:600])
    assert ColumnarPredictor(pipe).direct
    odd = new.iloc[:400].copy()
    odd.loc[odd.index[:20], "source"] = "carrier-pigeon"  # unseen category
    odd.loc[odd.index[20:40], "title"] = "zzzqqq"  # only unknown n-grams
    odd.loc[odd.index[20:40], "description"] = ""
    _assert_same(pipe, odd)


def test_unknown_steps_run_through_sklearn_and_still_match(
    tickets: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    ref, new = tickets
    text = Pipeline(
        [("join", FunctionTransformer(_joined)), ("tfidf", TfidfVectorizer(analyzer="char_wb"))]
    )
    features = ColumnTransformer(
        [
            ("text", text, ["title", "description"]),
            ("words", CountVectorizer(binary=True), "title"),
            ("meta", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["source"]),
        ],
        sparse_threshold=0.0,  # dense output
    )
    pipe = Pipeline([("f", features), ("clf", LogisticRegression(max_iter=300))])
    pipe.fit(ref[list(FEATURE_COLUMNS)].iloc[:800], ref["label_urgency"].iloc[:800])
    _assert_same(pipe, new.iloc[:600])


def test_binary_labels_and_unseen_categories(tickets: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from serving_support import small_pipeline

    ref, new = tickets
    y = np.where(ref["label_urgency"].isin(["high", "critical"]), "urgent", "normal")
    pipe = small_pipeline().fit(ref[list(FEATURE_COLUMNS)], y)
    odd = new.iloc[:300].copy()
    odd["source"] = "carrier-pigeon"
    odd.loc[odd.index[:50], "customer_tier"] = "Diamond"
    odd.loc[odd.index[50:80], "description"] = ""
    _assert_same(pipe, odd)


def test_a_model_without_predict_proba_is_refused() -> None:
    from sklearn.linear_model import LinearRegression

    from ticket_urgency.predictor import ModelLoadError

    with pytest.raises(ModelLoadError, match="predict_proba"):
        wrap_model(ModelRef("u", "m", "1", None), LinearRegression().fit(np.eye(2), [0, 1]))


@pytest.mark.parametrize(
    "pattern", [r"(?u)\b\w\w+\b", r"(?u)\b\w[\w'-]*\w\b|\b\w\b"], ids=["sklearn", "project"]
)
def test_chunk_cached_tokens_equal_the_tokenizer(pattern: str) -> None:
    from sklearn.feature_extraction.text import CountVectorizer

    from ticket_urgency.sparse_linear import CHUNKABLE_TOKEN_PATTERNS, _chunk_cached

    assert pattern in CHUNKABLE_TOKEN_PATTERNS
    tokenize = CountVectorizer(token_pattern=pattern).build_tokenizer()
    cached = _chunk_cached(tokenize)
    texts = [
        "don't re-open ticket-42 -- it's 'quoted' - a b c",
        "tabs\tand\nnew\u00a0lines\u2003em-space  x",
        "ünïcødé ✓ 请帮忙 ١٢٣ foo_bar __init__ a'b' '-'",
        "",
        "   ",
        "ends with hyphen- and apostrophe' 'starts",
    ]
    for text in texts * 2:  # the second pass answers from the cache
        assert cached(text) == tokenize(text), text
