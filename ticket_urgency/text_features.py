"""Text-derived, low-dimensional features of tickets for drift monitoring.

Raw ``title``/``description`` strings are high-cardinality; drift detectors mistreat them. This
module turns them into a handful of numeric and categorical columns that a univariate test
(and NannyML) can compare between the reference and new data:

* ``title_chars``, ``title_words``, ``description_chars``, ``description_words``: sizes;
* ``urgent_share``: share of tokens from a small, generic English lexicon of urgent-sounding
  words (:data:`URGENT_TERMS`; nothing learned from our generator or its labels);
* ``unseen_token_share``: share of tokens never seen in the reference fit sample (new
  vocabulary: a new product, a new error, a new language);
* ``text_svd_<k>``: a TF-IDF + TruncatedSVD projection of the hashed text;
* ``text_topic``: the nearest of a few k-means "topics" in that projection (categorical).

Every learned part is fitted on a *fit split* of the reference (:meth:`TextFeaturizer.fit`);
the reference rows used for comparison must not overlap it, otherwise e.g. the reference's
unseen-token share is zero by construction and same-distribution data looks drifted
(:func:`split_reference` does the split). All operations are vectorised (hashing, sparse
algebra, pandas string methods); long texts are truncated before hashing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import MiniBatchKMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import HashingVectorizer

URGENT_TERMS: tuple[str, ...] = (
    "urgent", "urgently", "asap", "immediately", "emergency", "critical", "critically",
    "outage", "outages", "down", "offline", "unavailable", "unusable", "broken", "blocked",
    "blocking", "blocker", "crash", "crashed", "crashes", "crashing", "fail", "failed",
    "failing", "fails", "failure", "error", "errors", "severe", "severity", "sev1", "p1",
    "escalate", "escalation", "breach", "security", "leak", "leaked", "exposed", "loss",
    "lost", "corrupt", "corrupted", "deleted", "revenue", "production", "prod", "nothing",
    "cannot", "can't", "everyone", "all", "whole", "entire", "stopped", "help", "now",
    "incident", "panic", "fatal", "exception", "timeout",
)  # fmt: skip
"""A generic lexicon of urgent-sounding English words (lower case)."""

NUMERIC_FEATURES: tuple[str, ...] = (
    "title_chars",
    "title_words",
    "description_chars",
    "description_words",
    "urgent_share",
    "unseen_token_share",
)
TOPIC_FEATURE = "text_topic"
_TOKEN_PATTERN = r"(?u)\b\w[\w']*\b"


@dataclass(frozen=True)
class TextFeatureConfig:
    """How text features are computed.

    Attributes:
        n_components: Dimensions of the SVD text projection reported as features.
        n_topics: Number of k-means topics (``text_topic`` categories).
        hash_features: Buckets of the hashing vectorizer.
        max_chars: Characters of title + description hashed (lengths use the full text).
        fit_rows: At most this many reference rows are used to fit the projection.
        min_token_df: A token bucket counts as "seen" when it occurs in at least this many
            fit documents.
        seed: Random seed of the SVD and k-means.
    """

    n_components: int = 3
    n_topics: int = 6
    hash_features: int = 2**18
    max_chars: int = 1000
    fit_rows: int = 10_000
    min_token_df: int = 2
    seed: int = 0


def _text(df: pd.DataFrame, max_chars: int) -> pd.Series:
    title = df["title"].fillna("").astype(str)
    desc = df["description"].fillna("").astype(str)
    return (title + "\n" + desc).str.slice(0, max_chars)


def _word_count(s: pd.Series) -> np.ndarray:
    return np.fromiter((len(x.split()) for x in s.tolist()), dtype=np.float64, count=len(s))


def split_reference(n_rows: int, config: TextFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Split reference row positions into a fit part and a comparison part (disjoint).

    Half of the reference (at most ``config.fit_rows`` rows) fits the text projection; the
    rest is what new data is compared against.

    Args:
        n_rows: Number of reference rows.
        config: Text feature configuration (``fit_rows``, ``seed``).

    Returns:
        ``(fit_positions, compare_positions)``, each sorted.
    """
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n_rows)
    n_fit = min(n_rows // 2, config.fit_rows)
    return np.sort(order[:n_fit]), np.sort(order[n_fit:])


@dataclass
class TextFeaturizer:
    """Fit on reference text, then map any ticket frame to the text features."""

    config: TextFeatureConfig = field(default_factory=TextFeatureConfig)
    _hasher: HashingVectorizer | None = None
    _idf: np.ndarray | None = None
    _seen: np.ndarray | None = None
    _urgent: np.ndarray | None = None
    _columns: np.ndarray | None = None
    _svd: TruncatedSVD | None = None
    _kmeans: MiniBatchKMeans | None = None
    _n_dims: int = 0

    @property
    def feature_names(self) -> list[str]:
        """Names of the numeric features (topic excluded), in column order."""
        return [*NUMERIC_FEATURES, *(f"text_svd_{k}" for k in range(self.config.n_components))]

    def _counts(self, df: pd.DataFrame) -> sp.csr_matrix:
        assert self._hasher is not None
        if len(df) == 0:
            return sp.csr_matrix((0, self.config.hash_features), dtype=np.float32)
        return sp.csr_matrix(self._hasher.transform(_text(df, self.config.max_chars)))

    def fit(self, reference: pd.DataFrame) -> TextFeaturizer:
        """Fit vocabulary statistics, the SVD projection and the topics on reference rows.

        Args:
            reference: Reference tickets (the fit split); needs ``title`` and ``description``.

        Returns:
            self
        """
        cfg = self.config
        self._hasher = HashingVectorizer(
            n_features=cfg.hash_features,
            alternate_sign=False,
            norm=None,
            lowercase=True,
            token_pattern=_TOKEN_PATTERN,
            dtype=np.float32,
        )
        urgent = self._hasher.transform([" ".join(URGENT_TERMS)])
        self._urgent = np.zeros(cfg.hash_features, dtype=np.float32)
        self._urgent[urgent.indices] = 1.0
        counts = self._counts(reference)
        doc_freq = np.asarray((counts > 0).sum(axis=0)).ravel()
        self._seen = (doc_freq >= cfg.min_token_df).astype(np.float32)
        n_docs = max(counts.shape[0], 1)
        self._idf = (np.log((1 + n_docs) / (1 + doc_freq)) + 1).astype(np.float32)
        # The projection only uses buckets seen in the fit sample: a few thousand columns
        # instead of hash_features keeps the SVD cheap.
        self._columns = np.flatnonzero(self._seen)
        if self._columns.size < 2:
            self._columns = np.arange(min(2, cfg.hash_features))
        tfidf = self._tfidf(counts)
        n_dims = max(1, min(cfg.n_components + 5, tfidf.shape[0] - 1, tfidf.shape[1] - 1))
        self._svd = TruncatedSVD(n_components=n_dims, random_state=cfg.seed, algorithm="randomized")
        proj = np.asarray(self._svd.fit_transform(tfidf), dtype=np.float64)
        self._n_dims = n_dims
        n_topics = max(1, min(cfg.n_topics, proj.shape[0]))
        self._kmeans = MiniBatchKMeans(
            n_clusters=n_topics, random_state=cfg.seed, n_init=3, batch_size=4096
        )
        self._kmeans.fit(_unit_rows(proj))
        return self

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        assert self._idf is not None and self._columns is not None
        x = sp.csr_matrix(counts[:, self._columns])
        x.data = np.log1p(x.data)
        x = sp.csr_matrix(x.multiply(self._idf[self._columns][None, :]))
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms) @ x)

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return the text features of ``df`` (same index), one column per feature.

        Args:
            df: Tickets with ``title`` and ``description``.

        Returns:
            A frame with :attr:`feature_names` (float) and ``text_topic`` (string) columns.

        Raises:
            RuntimeError: When called before :meth:`fit`.
        """
        if self._svd is None or self._kmeans is None or self._seen is None:
            raise RuntimeError("TextFeaturizer.transform called before fit")
        assert self._urgent is not None
        title = df["title"].fillna("").astype(str)
        desc = df["description"].fillna("").astype(str)
        out: dict[str, np.ndarray] = {
            "title_chars": title.str.len().to_numpy(dtype=np.float64),
            "title_words": _word_count(title),
            "description_chars": desc.str.len().to_numpy(dtype=np.float64),
            "description_words": _word_count(desc.str.slice(0, 20 * self.config.max_chars)),
        }
        counts = self._counts(df)
        tokens = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64)
        safe = np.where(tokens > 0, tokens, 1.0)
        out["urgent_share"] = (counts @ self._urgent).astype(np.float64) / safe
        out["unseen_token_share"] = (tokens - counts @ self._seen) / safe
        proj = (
            np.asarray(self._svd.transform(self._tfidf(counts)), dtype=np.float64)
            if len(df)
            else np.zeros((0, self._n_dims))
        )
        for k in range(self.config.n_components):
            out[f"text_svd_{k}"] = proj[:, k] if k < proj.shape[1] else np.zeros(len(df))
        frame = pd.DataFrame(out, index=df.index)
        topics = self._kmeans.predict(_unit_rows(proj)) if len(df) else []
        frame[TOPIC_FEATURE] = pd.Series([f"topic_{t}" for t in topics], index=df.index, dtype=str)
        return frame


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.asarray(x / norms)
