"""Direct scoring of a fitted text pipeline whose classifier is linear, without ``scipy.sparse``.

For the pipelines :func:`ticket_urgency.model.build_pipeline` makes (column preprocessors, one
``ColumnTransformer`` of count/TF-IDF vectorisers and one-hot encoders, a linear or calibrated
linear classifier), :class:`LinearPlan` computes ``predict_proba`` from flat arrays:

* every block yields the ``(row, column, value)`` entries of its part of the feature matrix in
  CSR order, with the fitted vectoriser's own vocabulary, tokenizer and TF-IDF weights;
* the decision function is ``sum(value * coef[:, column])`` per row, accumulated in the same
  order as scipy's CSR product (blocks left to right, columns ascending), with ``np.bincount``.

It repeats scikit-learn's arithmetic operation by operation, so the probabilities are the same
bits (``tests/serving/test_fast_path.py`` checks thousands of tickets). What it saves is the
per-call overhead of building, validating and stacking sparse matrices and of pandas, which
dominates when a few tickets are scored at a time. ``char_wb`` n-grams are cached per word.

Anything it does not recognise makes :meth:`LinearPlan.build` return None (the caller uses the
generic columnar path); an input it cannot handle at call time raises :class:`PlanFallback`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import repeat
from types import SimpleNamespace
from typing import Any

import numpy as np

Columns = Mapping[str, list[Any]]
Block = Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""Rows -> (row index, column index, value) of one feature block, in CSR order."""

WORD_CACHE_LIMIT = 200_000
"""Words whose ``char_wb`` n-gram ids are cached per vectoriser (the cache is then reset)."""


CHUNKABLE_TOKEN_PATTERNS = frozenset(
    {
        r"(?u)\b\w\w+\b",  # scikit-learn's default
        r"(?u)\b\w[\w'-]*\w\b|\b\w\b",  # ticket_urgency.model's word vectoriser
    }
)
"""Token patterns whose tokens never contain whitespace and whose ``\b`` at a word's edge
behaves as next to a space: the tokens of a text are the tokens of its whitespace-separated
chunks, in order, so they can be cached per chunk."""


def _chunk_cached(tokenize: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    """``tokenize`` with its result cached per whitespace-separated chunk of the text."""
    cache: dict[str, list[str]] = {}

    def cached(doc: str) -> list[str]:
        out: list[str] = []
        for chunk in doc.split():
            tokens = cache.get(chunk)
            if tokens is None:
                if len(cache) >= WORD_CACHE_LIMIT:
                    cache.clear()
                tokens = cache[chunk] = tokenize(chunk)
            out.extend(tokens)
        return out

    return cached


class PlanFallback(Exception):
    """The input cannot be scored by the plan (use the generic path for this call)."""


@dataclass(slots=True)
class Flat:
    """A sparse feature matrix as flat CSR-ordered entries."""

    n_rows: int
    n_features: int
    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_features)`` like a matrix."""
        return (self.n_rows, self.n_features)


def _count_entries(
    rows: np.ndarray | None, ids: np.ndarray, n_features: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Term ids (and their rows; None for a single document) -> sorted (row, column, count).

    This is ``np.unique(rows * n_features + ids, return_counts=True)`` without the per-call
    overhead of ``np.unique`` and ``np.diff``, which dominates for a few documents.
    """
    if rows is None:
        keys = ids.copy()
    else:
        keys = rows * n_features
        keys += ids
    keys.sort()
    n = len(keys)
    if n == 0:
        return keys, keys, keys
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = first.nonzero()[0]
    counts = np.empty(len(starts), dtype=np.int64)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = n - starts[-1]
    keys = keys[starts]
    if rows is None:
        return np.zeros(len(keys), dtype=np.int64), keys, counts
    key_rows = keys // n_features
    keys -= key_rows * n_features
    return key_rows, keys, counts


def _text_block(est: Any) -> tuple[Block, int] | None:
    """A fitted CountVectorizer/TfidfVectorizer as a block (None when not supported)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.utils.sparsefuncs_fast import (
        inplace_csr_row_normalize_l1,
        inplace_csr_row_normalize_l2,
    )

    if type(est) not in (CountVectorizer, TfidfVectorizer) or est.input != "content":
        return None
    if est.preprocessor is not None or est.strip_accents is not None:
        return None
    if not isinstance(est.analyzer, str) or not hasattr(est, "vocabulary_"):
        return None
    if est.analyzer == "word" and (est.tokenizer is not None or est.stop_words is not None):
        return None
    tfidf = getattr(est, "_tfidf", None) if isinstance(est, TfidfVectorizer) else None
    if tfidf is not None and tfidf.norm not in (None, "l1", "l2"):
        return None
    vocab: dict[str, int] = est.vocabulary_
    get = vocab.get
    n_features = len(vocab)
    dtype = est.dtype
    lower = bool(est.lowercase)
    min_n, max_n = est.ngram_range
    sublinear = bool(tfidf is not None and tfidf.sublinear_tf)
    idf = getattr(tfidf, "idf_", None) if tfidf is not None and tfidf.use_idf else None
    norm = None if tfidf is None else tfidf.norm

    ids_of: Callable[[list[str]], tuple[np.ndarray | None, np.ndarray]]
    if est.analyzer == "char_wb":
        word_ngrams = est._char_wb_ngrams
        cache: dict[str, tuple[np.ndarray, int]] = {}

        def ids_of(docs: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
            parts: list[np.ndarray] = []
            lengths: list[int] = []
            for doc in docs:
                total = 0
                # char_wb collapses whitespace and pads each word: its n-grams never depend on
                # the neighbouring words, so they are computed once per distinct word.
                for word in (doc.lower() if lower else doc).split():
                    hit = cache.get(word)
                    if hit is None:
                        if len(cache) >= WORD_CACHE_LIMIT:
                            cache.clear()
                        found = [i for i in map(get, word_ngrams(word), repeat(-1)) if i >= 0]
                        hit = cache[word] = (np.asarray(found, dtype=np.int64), len(found))
                    parts.append(hit[0])
                    total += hit[1]
                lengths.append(total)
            ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            if len(docs) == 1:
                return None, ids
            return np.repeat(np.arange(len(docs), dtype=np.int64), lengths), ids

    else:
        if est.analyzer == "word":
            tokenize = est.build_tokenizer()
            if est.token_pattern in CHUNKABLE_TOKEN_PATTERNS:
                tokenize = _chunk_cached(tokenize)

            def grams(doc: str) -> list[str]:
                tokens: list[str] = tokenize(doc)
                out = list(tokens) if min_n == 1 else []
                for n in range(max(min_n, 2), max_n + 1):
                    out.extend(map(" ".join, zip(*(tokens[i:] for i in range(n)), strict=False)))
                return out

        elif est.analyzer == "char":
            grams = est._char_ngrams
        else:
            return None

        def ids_of(docs: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
            if len(docs) == 1:
                g = grams(docs[0].lower() if lower else docs[0])
                ids = np.array([get(x, -1) for x in g], dtype=np.int64)
                return None, ids[ids >= 0]
            every: list[str] = []
            lengths: list[int] = []
            for doc in docs:
                g = grams(doc.lower() if lower else doc)
                every.extend(g)
                lengths.append(len(g))
            ids = np.array([get(g, -1) for g in every], dtype=np.int64)
            rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
            known = ids >= 0  # n-grams outside the vocabulary are not counted
            return rows[known], ids[known]

    def block(docs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise PlanFallback("text column is not a list of strings")
        doc_rows, ids = ids_of(docs)
        rows, cols, counts = _count_entries(doc_rows, ids, n_features)
        # CountVectorizer counts in intc and then casts to its dtype
        vals = counts.astype(np.intc).astype(dtype)
        if est.binary:
            vals.fill(1)
        if tfidf is None:
            return rows, cols, vals
        if vals.dtype not in (np.float32, np.float64):
            vals = vals.astype(np.float64)
        if sublinear:
            np.log(vals, vals)
            vals += 1.0
        if idf is not None:
            vals *= idf[cols]
        if norm is not None:
            if len(docs) == 1:
                indptr = np.array([0, len(vals)], dtype=np.int64)
            else:
                indptr = np.searchsorted(rows, np.arange(len(docs) + 1), side="left")
            csr = SimpleNamespace(data=vals, indices=cols, indptr=indptr, shape=(len(docs), 0))
            if norm == "l2":
                inplace_csr_row_normalize_l2(csr)
            else:
                inplace_csr_row_normalize_l1(csr)
        return rows, cols, vals

    return block, n_features


def _one_hot_block(est: Any, names: list[str]) -> tuple[Block, int] | None:
    """A fitted OneHotEncoder over string categories as a block (None when not supported)."""
    from sklearn.preprocessing import OneHotEncoder

    if type(est) is not OneHotEncoder or not getattr(est, "sparse_output", True):
        return None
    if getattr(est, "drop_idx_", None) is not None or getattr(est, "_infrequent_enabled", False):
        return None
    if est.handle_unknown not in ("ignore", "infrequent_if_exist", "warn"):
        return None
    fitted_names = [str(n) for n in getattr(est, "feature_names_in_", names)]
    if fitted_names != names or len(est.categories_) != len(names):
        return None
    lookups: list[dict[str, int]] = []
    offset = 0
    for cats in est.categories_:
        if cats.dtype != object or any(not isinstance(v, str) for v in cats):
            return None
        lookups.append({v: offset + i for i, v in enumerate(cats.tolist())})
        offset += len(cats)
    dtype = est.dtype
    width = len(names)

    def block(data: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(data[names[0]])
        idx = np.empty((n, width), dtype=np.int64)
        for j, (name, lookup) in enumerate(zip(names, lookups, strict=True)):
            values = data[name]
            if not all(isinstance(v, str) for v in values):
                raise PlanFallback(f"column {name!r} has non-string values")
            idx[:, j] = np.fromiter(map(lookup.get, values, repeat(-1)), dtype=np.int64, count=n)
        flat = idx.ravel()  # row-major: per row, column blocks left to right = ascending ids
        known = flat >= 0
        rows = np.repeat(np.arange(n, dtype=np.int64), width)[known]
        cols = flat[known]
        return rows, cols, np.ones(len(cols), dtype=dtype)

    return block, offset


def _flat_decision(est: Any) -> Callable[[Any], np.ndarray] | None:
    """``decision_function`` of a fitted linear classifier on :class:`Flat` features."""
    import scipy.sparse as sp
    from sklearn.linear_model._base import LinearClassifierMixin

    if not isinstance(est, LinearClassifierMixin) or not hasattr(est, "coef_"):
        return None
    if sp.issparse(est.coef_):
        return None
    coef = np.asarray(est.coef_, dtype=np.float64)
    if coef.ndim == 1:
        coef = coef.reshape(1, -1)
    coef_t = np.ascontiguousarray(coef.T)  # one contiguous row of weights per feature
    intercept = est.intercept_
    k = coef.shape[0]
    classes = np.arange(k, dtype=np.int64)
    one_row_slots = [np.tile(classes, 1024)]  # (row 0, class) slots, grown on demand

    def decision(x: Any) -> np.ndarray:
        if not isinstance(x, Flat):
            raise PlanFallback("features are not flat")
        n = x.n_rows
        products = coef_t.take(x.cols, axis=0)
        products *= x.vals[:, None]  # the value (as float64) times the weight, like scipy
        # One sequential sum per (row, class) in entry order: scipy's CSR product order.
        if n == 1:
            if one_row_slots[0].size < products.size:
                one_row_slots[0] = np.tile(classes, 2 * len(x.cols))
            slots = one_row_slots[0][: products.size]
        else:
            slots = (x.rows * k)[:, None] + classes
        scores = np.bincount(slots.ravel(), weights=products.ravel(), minlength=n * k)
        scores = scores.reshape(n, k) + intercept
        return scores.reshape(-1) if k == 1 else scores

    return decision


class LinearPlan:
    """``predict_proba`` of a supported fitted pipeline from flat sparse entries.

    Build with :meth:`build`; see the module docstring for what is supported.
    """

    def __init__(
        self,
        preprocessors: list[Any],
        blocks: list[tuple[Any, Block, int]],
        proba: Callable[[Any], np.ndarray],
        dtype: np.dtype[Any],
    ) -> None:
        self._preprocessors = preprocessors
        self._blocks = blocks
        self._proba = proba
        self._dtype = dtype
        self.n_features = sum(width for _key, _block, width in blocks)

    @classmethod
    def build(
        cls,
        pipeline: Any,
        fast_proba: Callable[[Any, Callable[[Any], Any]], Callable[[Any], np.ndarray] | None],
    ) -> LinearPlan | None:
        """Return the plan of ``pipeline``, or None when its structure is not supported.

        Args:
            pipeline: A fitted :class:`~sklearn.pipeline.Pipeline`.
            fast_proba: Builds ``predict_proba`` of the final estimator from a decision-function
                factory (``ticket_urgency.predictor``'s mirror of scikit-learn's arithmetic).
        """
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline):
            return None
        steps = [
            t
            for _n, t in pipeline.steps[:-1]
            if not (t is None or (isinstance(t, str) and t == "passthrough"))
        ]
        if not steps or not isinstance(steps[-1], ColumnTransformer):
            return None
        *preprocessors, features = steps
        if not all(hasattr(p, "transform_columns") for p in preprocessors):
            return None
        if not features.sparse_output_ or features.transformer_weights is not None:
            return None
        blocks: list[tuple[Any, Block, int]] = []
        dtypes = []
        for _name, trans, cols in features.transformers_:
            if isinstance(trans, str) and trans == "drop":
                continue
            if isinstance(cols, list | tuple | np.ndarray) and len(cols) == 0:
                continue
            if isinstance(cols, str):
                built = _text_block(trans)
            elif isinstance(cols, list | tuple) and all(isinstance(c, str) for c in cols):
                built = _one_hot_block(trans, list(cols))
            else:
                built = None
            if built is None:
                return None
            blocks.append((cols, built[0], built[1]))
            dtypes.append(np.dtype(trans.dtype))
        final = pipeline.steps[-1][1]
        n_in = getattr(final, "n_features_in_", None)
        if not blocks or (n_in is not None and n_in != sum(w for _c, _b, w in blocks)):
            return None
        proba = fast_proba(final, _flat_decision)
        if proba is None:
            return None
        return cls(preprocessors, blocks, proba, np.result_type(*dtypes))

    def features(self, columns: Columns) -> Flat:
        """The feature matrix of ``columns`` as flat entries."""
        data: Any = columns
        for pre in self._preprocessors:
            data = pre.transform_columns(data)
        n = len(next(iter(data.values())))
        rows, cols, vals = [], [], []
        offset = 0
        for key, block, width in self._blocks:
            r, c, v = block(data[key] if isinstance(key, str) else data)
            rows.append(r)
            cols.append(c + offset if offset else c)
            vals.append(v)
            offset += width
        return Flat(
            n,
            self.n_features,
            np.concatenate(rows),
            np.concatenate(cols),
            np.concatenate(vals).astype(self._dtype, copy=False),
        )

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Class probabilities in the final estimator's ``classes_`` order."""
        return np.asarray(self._proba(self.features(columns)))
