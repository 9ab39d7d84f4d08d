"""Load a registered urgency model for serving and predict with it, fast.

Serving resolves the configured model URI (``models:/<name>/<stage>`` or
``models:/<name>@<alias>``) to one registry version through :class:`mlflow.MlflowClient`, loads
exactly that version with :func:`mlflow.sklearn.load_model` and wraps it in a
:class:`LoadedModel`. Nothing here imports nannyml, dagster or FastAPI.

Speed: the pipeline's own ``predict_proba`` on a one-row pandas frame spends most of its time in
pandas and ``ColumnTransformer`` bookkeeping. :class:`ColumnarPredictor` walks the fitted
pipeline once and runs the *same fitted transformers* on plain Python lists (a one-hot encoder
is replaced by an equivalent index lookup), so it returns the same probabilities as the
pipeline (checked on sample tickets every time a model is loaded, and by a test on thousands
of generated tickets). Pieces it does not know run through scikit-learn on a small frame; if the
load-time check ever disagrees, the model is served through the plain pipeline instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ticket_urgency.contract import FEATURE_COLUMNS
from ticket_urgency.sparse_linear import LinearPlan, PlanFallback

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from ticket_urgency.settings import Settings

logger = logging.getLogger(__name__)

Columns = dict[str, list[Any]]
"""A batch of rows stored column-wise: column name -> list of values."""

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<ref>[^/@]+)|@(?P<alias>[^/@]+))$")
_STAGES = {"production", "staging", "archived", "none"}

# Tolerance of the load-time agreement check between the fast path and the pipeline.
AGREEMENT_ATOL = 1e-9


class ModelNotFoundError(RuntimeError):
    """The model URI resolves to no registered version (nothing promoted yet)."""


class ModelLoadError(RuntimeError):
    """A resolved version could not be loaded or failed its smoke test."""


@dataclass(frozen=True)
class ModelRef:
    """One registry version that a model URI resolved to."""

    uri: str
    name: str
    version: str
    run_id: str | None
    source: str | None = None

    @property
    def version_uri(self) -> str:
        """The pinned URI of this exact version (``models:/<name>/<version>``)."""
        return f"models:/{self.name}/{self.version}"


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None, str | None]:
    """Split a registry URI into ``(name, stage, alias, version)`` (one of the last three set).

    Raises:
        ValueError: When ``uri`` is not ``models:/name/<stage|version>`` or ``models:/name@alias``.
    """
    m = _URI.match(uri.strip())
    if not m:
        raise ValueError(
            f"model URI {uri!r} is not models:/<name>/<stage or version> or models:/<name>@<alias>"
        )
    name, ref, alias = m.group("name"), m.group("ref"), m.group("alias")
    if alias is not None:
        return name, None, alias, None
    assert ref is not None
    if ref.isdigit():
        return name, None, None, ref
    if ref.lower() not in _STAGES and ref.lower() != "latest":
        raise ValueError(f"model URI {uri!r}: {ref!r} is neither a stage nor a version number")
    return name, ref, None, None


def make_client(settings: Settings) -> MlflowClient:
    """Return an MLflow client on the configured tracking and registry URIs."""
    from mlflow import MlflowClient

    return MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri,
        registry_uri=settings.mlflow_registry_uri or settings.mlflow_tracking_uri,
    )


def resolve_model(client: MlflowClient, uri: str) -> ModelRef:
    """Resolve ``uri`` to the registry version it names right now.

    Args:
        client: MLflow client on the configured registry.
        uri: ``models:/name/Production``, ``models:/name@production``, ``models:/name/3``...

    Returns:
        The resolved version.

    Raises:
        ModelNotFoundError: When nothing is registered/promoted under ``uri``.
        ValueError: When ``uri`` is malformed.
        mlflow.exceptions.MlflowException: When the registry cannot be reached.
    """
    from mlflow.exceptions import MlflowException

    name, stage, alias, version = parse_model_uri(uri)
    try:
        if alias is not None:
            mv = client.get_model_version_by_alias(name, alias)
        elif version is not None:
            mv = client.get_model_version(name, version)
        else:
            assert stage is not None
            stages = None if stage.lower() == "latest" else [stage]
            found = client.get_latest_versions(name, stages=stages)
            if not found:
                raise ModelNotFoundError(f"no version of model {name!r} is in stage {stage!r}")
            mv = max(found, key=lambda v: int(v.version))
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise ModelNotFoundError(
                f"{uri} resolves to no registered model: {exc.message}"
            ) from exc
        raise
    return ModelRef(
        uri=uri,
        name=name,
        version=str(mv.version),
        run_id=mv.run_id or None,
        source=getattr(mv, "source", None),
    )


# --------------------------------------------------------------------------------------------
# The columnar fast path
# --------------------------------------------------------------------------------------------

Step = Callable[[Any], Any]


def _to_frame(data: Any) -> Any:
    """Give an unknown transformer what the pipeline would: a DataFrame or a Series."""
    import pandas as pd

    if isinstance(data, dict):
        return pd.DataFrame(data, columns=list(data))
    if isinstance(data, _Column):
        return pd.Series(data.values, name=data.name, dtype=object)
    return data


def _from_output(out: Any) -> Any:
    """Turn a transformer's output into the columnar form when it is a frame or series."""
    import pandas as pd

    if isinstance(out, pd.DataFrame):
        return {str(c): out[c].tolist() for c in out.columns}
    if isinstance(out, pd.Series):
        return _Column(str(out.name), out.tolist())
    return out


@dataclass
class _Column:
    """One selected column (what a ``ColumnTransformer`` passes for a string key)."""

    name: str
    values: list[Any]


def _generic(est: Any) -> Step:
    def run(data: Any) -> Any:
        return _from_output(est.transform(_to_frame(data)))

    return run


def _vectorizer(est: Any) -> Step:
    fast = _fast_vectorizer(est)

    def run(data: Any) -> Any:
        if isinstance(data, _Column):
            docs = data.values
        elif isinstance(data, list):
            docs = data
        else:
            return est.transform(_to_frame(data))
        if fast is not None and all(isinstance(d, str) for d in docs):
            return fast(docs)
        return est.transform(docs)

    return run


_WORD_CACHE_LIMIT = 200_000


def _fast_vectorizer(est: Any) -> Callable[[list[str]], Any] | None:
    """Count/TF-IDF vectorisation equal to ``est.transform`` without its validation overhead.

    The counts come from the vectoriser's own analyzer; for ``char_wb`` the n-grams of each
    word are cached (they never depend on the neighbouring words). The TF-IDF weighting then
    repeats :class:`~sklearn.feature_extraction.text.TfidfTransformer` step by step.
    """
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.utils.sparsefuncs_fast import (
        inplace_csr_row_normalize_l1,
        inplace_csr_row_normalize_l2,
    )

    if not isinstance(est, CountVectorizer) or est.input != "content":
        return None
    vocab: dict[str, int] = est.vocabulary_
    n_features = len(vocab)
    dtype = est.dtype
    tfidf = getattr(est, "_tfidf", None) if isinstance(est, TfidfVectorizer) else None
    if tfidf is not None and tfidf.norm not in (None, "l1", "l2"):
        return None
    sublinear = bool(tfidf is not None and tfidf.sublinear_tf)
    idf = getattr(tfidf, "idf_", None) if tfidf is not None and tfidf.use_idf else None
    norm = None if tfidf is None else tfidf.norm

    features: Callable[[str], list[int]]
    if est.analyzer == "char_wb":
        preprocess = est.build_preprocessor()
        white = est._white_spaces
        ngrams = est._char_wb_ngrams
        cache: dict[str, list[int]] = {}

        def features(doc: str) -> list[int]:
            out: list[int] = []
            for word in white.sub(" ", preprocess(est.decode(doc))).split():
                idx = cache.get(word)
                if idx is None:
                    if len(cache) >= _WORD_CACHE_LIMIT:
                        cache.clear()
                    idx = [vocab[g] for g in ngrams(word) if g in vocab]
                    cache[word] = idx
                out.extend(idx)
            return out

    elif isinstance(est.analyzer, str):
        analyze = est.build_analyzer()

        def features(doc: str) -> list[int]:
            return [vocab[g] for g in analyze(doc) if g in vocab]

    else:
        return None

    def run(docs: list[str]) -> Any:
        # Sorted (row, column) keys with their counts are exactly the CSR layout that
        # CountVectorizer builds (it sorts the indices of each row).
        per_doc = [features(doc) for doc in docs]
        lengths = np.fromiter((len(f) for f in per_doc), dtype=np.int64, count=len(per_doc))
        flat = np.fromiter(chain.from_iterable(per_doc), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
        keys, counts = np.unique(rows * n_features + flat, return_counts=True)
        key_rows = keys // n_features
        indptr = np.searchsorted(key_rows, np.arange(len(docs) + 1), side="left")
        x = sp.csr_matrix(
            (
                counts.astype(np.intc).astype(dtype),
                (keys - key_rows * n_features).astype(np.int32),
                indptr.astype(np.int32),
            ),
            shape=(len(docs), n_features),
        )
        if est.binary:
            x.data.fill(1)
        if tfidf is None:
            return x
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        if sublinear:
            np.log(x.data, x.data)
            x.data += 1.0
        if idf is not None:
            x.data *= idf[x.indices]
        if norm == "l2":
            inplace_csr_row_normalize_l2(x)
        elif norm == "l1":
            inplace_csr_row_normalize_l1(x)
        return x

    return run


def _one_hot(est: Any) -> Step | None:
    """An index-lookup equivalent of a fitted OneHotEncoder (None when not equivalent)."""
    if getattr(est, "drop_idx_", None) is not None or getattr(est, "_infrequent_enabled", False):
        return None
    if est.handle_unknown not in ("ignore", "infrequent_if_exist", "warn"):
        return None
    cats = est.categories_
    if any(c.dtype != object for c in cats):
        return None
    lookups: list[dict[Any, int]] = []
    offset = 0
    for c in cats:
        if any(not isinstance(v, str) for v in c):
            return None
        lookups.append({v: offset + i for i, v in enumerate(c.tolist())})
        offset += len(c)
    n_out = offset
    dtype = est.dtype
    sparse_out = bool(getattr(est, "sparse_output", True))
    names = [str(n) for n in getattr(est, "feature_names_in_", [])]
    fallback = _generic(est)

    def run(data: Any) -> Any:
        if not isinstance(data, dict) or (names and list(data) != names) or len(data) != len(cats):
            return fallback(data)
        cols = list(data.values())
        n = len(cols[0])
        indptr = [0]
        indices: list[int] = []
        for r in range(n):
            for j, lookup in enumerate(lookups):
                v = cols[j][r]
                if not isinstance(v, str):
                    return fallback(data)  # missing values etc.: let scikit-learn decide
                k = lookup.get(v)
                if k is not None:
                    indices.append(k)
            indptr.append(len(indices))
        out = sp.csr_matrix(
            (np.ones(len(indices), dtype=dtype), np.asarray(indices, dtype=np.int32), indptr),
            shape=(n, n_out),
        )
        return out if sparse_out else out.toarray()

    return run


def _select(data: Any, key: Any) -> Any:
    if not isinstance(data, dict):
        raise _Unsupported(f"column selection on {type(data).__name__}")
    if isinstance(key, str):
        return _Column(key, data[key])
    if isinstance(key, list | tuple | np.ndarray) and all(isinstance(k, str) for k in key):
        return {k: data[k] for k in key}
    raise _Unsupported(f"column key {key!r}")


class _Unsupported(Exception):
    pass


def _column_transformer(est: Any) -> Step:
    parts: list[tuple[Any, Step | None]] = []
    for _name, trans, cols in est.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        if isinstance(cols, list | tuple | np.ndarray) and len(cols) == 0:
            continue
        if isinstance(trans, str) and trans == "passthrough":
            raise _Unsupported("passthrough columns")
        parts.append((cols, _compile(trans)))
    sparse_out = bool(est.sparse_output_)

    def run(data: Any) -> Any:
        outs = []
        for cols, step in parts:
            assert step is not None
            outs.append(step(_select(data, cols)))
        if sparse_out:
            return sp.hstack(
                [o if sp.issparse(o) else sp.csr_matrix(np.asarray(o)) for o in outs]
            ).tocsr()
        return np.hstack([o.toarray() if sp.issparse(o) else np.asarray(o) for o in outs])

    return run


def _pipeline(est: Any) -> Step:
    steps = [
        _compile(t)
        for _n, t in est.steps
        if not (t is None or (isinstance(t, str) and t == "passthrough"))
    ]

    def run(data: Any) -> Any:
        for step in steps:
            data = step(data)
        return data

    return run


def _compile(est: Any) -> Step:
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import (
        CountVectorizer,
        HashingVectorizer,
    )
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if hasattr(est, "transform_columns"):
        # Opt-in protocol: a transformer that can work on {column: list} directly.
        return lambda data: (
            est.transform_columns(data) if isinstance(data, dict) else _generic(est)(data)
        )
    if isinstance(est, Pipeline):
        return _pipeline(est)
    if isinstance(est, ColumnTransformer):
        return _column_transformer(est)
    if isinstance(est, CountVectorizer | HashingVectorizer):
        return _vectorizer(est)
    if isinstance(est, OneHotEncoder):
        return _one_hot(est) or _generic(est)
    return _generic(est)


def _linear_decision(est: Any) -> Callable[[Any], np.ndarray] | None:
    from sklearn.linear_model._base import LinearClassifierMixin
    from sklearn.utils.extmath import safe_sparse_dot

    if not isinstance(est, LinearClassifierMixin) or not hasattr(est, "coef_"):
        return None
    coef_t = est.coef_.T if est.coef_.ndim == 2 else est.coef_
    intercept = est.intercept_

    def decision(x: Any) -> np.ndarray:
        scores = safe_sparse_dot(x, coef_t, dense_output=True) + intercept
        scores = np.asarray(scores)
        return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores

    return decision


def _fast_proba(
    est: Any, linear: Callable[[Any], Callable[[Any], np.ndarray] | None] = _linear_decision
) -> Callable[[Any], np.ndarray] | None:
    """``predict_proba`` of a fitted linear or calibrated linear classifier, without validation.

    Mirrors scikit-learn's own arithmetic; returns None for anything else.

    Args:
        est: The fitted final estimator.
        linear: Builds the decision function of a fitted linear classifier (on sparse
            matrices by default; :mod:`ticket_urgency.sparse_linear` passes its flat version).
    """
    from scipy.special import expit
    from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import LabelEncoder
    from sklearn.utils.extmath import softmax

    if isinstance(est, LogisticRegression):
        decision = linear(est)
        if decision is None:
            return None
        assert decision is not None
        lr_decision = decision
        if len(est.classes_) > 2:
            return lambda x: softmax(lr_decision(x), copy=False)

        def binary(x: Any) -> np.ndarray:
            p = expit(lr_decision(x))
            return np.stack([1 - p, p], axis=1)

        return binary

    if isinstance(est, CalibratedClassifierCV):
        parts: list[tuple[Any, np.ndarray, list[Any] | None, Any, int]] = []
        for cc in est.calibrated_classifiers_:
            decision = linear(cc.estimator)
            if decision is None or cc.method not in ("sigmoid", "isotonic"):
                return None
            n_classes = int(cc.classes.shape[0])
            pos = LabelEncoder().fit(cc.classes).transform(cc.estimator.classes_)
            m = min(len(pos), len(cc.calibrators))
            # the probability column each calibrator fills (binary: the positive class)
            targets = np.asarray(pos[:m]) + (1 if n_classes == 2 else 0)
            if all(isinstance(cal, _SigmoidCalibration) for cal in cc.calibrators[:m]):
                # expit(-(a * t + b)) per calibrator, all columns in one vectorised call
                a = np.array([float(cal.a_) for cal in cc.calibrators[:m]])
                b = np.array([float(cal.b_) for cal in cc.calibrators[:m]])
                parts.append((decision, targets, None, (a, b), n_classes))
            else:
                parts.append((decision, targets, list(cc.calibrators[:m]), None, n_classes))

        def calibrated(x: Any) -> np.ndarray:
            n = x.shape[0]
            mean: np.ndarray | None = None
            for decision, targets, cals, sigmoid, n_classes in parts:
                pred = decision(x)
                if pred.ndim == 1:
                    pred = pred.reshape(-1, 1)
                m = len(targets)
                proba = np.zeros((n, n_classes))
                if sigmoid is not None:
                    a, b = sigmoid
                    proba[:, targets] = expit(-(a * pred[:, :m] + b))
                else:
                    assert cals is not None
                    for col, this_pred, cal in zip(targets, pred.T, cals, strict=False):
                        proba[:, col] = cal.predict(this_pred)
                if n_classes == 2:
                    proba[:, 0] = 1.0 - proba[:, 1]
                else:
                    denominator = np.sum(proba, axis=1)[:, np.newaxis]
                    uniform = np.full_like(proba, 1 / n_classes)
                    proba = np.divide(proba, denominator, out=uniform, where=denominator != 0)
                proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
                if len(parts) == 1:
                    return proba  # == (0 + proba) / 1, the mean of one calibrated classifier
                mean = proba if mean is None else mean + proba
            assert mean is not None
            return mean / len(parts)

        return calibrated
    return None


class ColumnarPredictor:
    """``predict_proba`` of a fitted sklearn pipeline on column lists, without pandas overhead.

    Args:
        pipeline: A fitted :class:`~sklearn.pipeline.Pipeline` whose last step has
            ``predict_proba``.

    Raises:
        TypeError: When the pipeline's structure is not supported (use the pipeline itself).
    """

    def __init__(self, pipeline: Any) -> None:
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"fast path needs a Pipeline, got {type(pipeline).__name__}")
        final = pipeline.steps[-1][1]
        if not hasattr(final, "predict_proba"):
            raise TypeError(f"{type(final).__name__} has no predict_proba")
        try:
            self._steps = [
                _compile(t)
                for _n, t in pipeline.steps[:-1]
                if not (t is None or (isinstance(t, str) and t == "passthrough"))
            ]
        except _Unsupported as exc:
            raise TypeError(f"fast path does not support {exc}") from exc
        self._final = final
        self._proba = _fast_proba(final) or final.predict_proba
        self._plan = LinearPlan.build(pipeline, _fast_proba)

    @property
    def direct(self) -> bool:
        """True when the flat linear plan (no scipy.sparse, no pandas) scores this model."""
        return self._plan is not None

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Return class probabilities, one row per input row, in ``classes_`` order."""
        if self._plan is not None:
            try:
                return self._plan.predict_proba(columns)
            except PlanFallback:
                pass
        features: Any = columns
        try:
            for step in self._steps:
                features = step(features)
        except _Unsupported as exc:
            raise TypeError(f"fast path does not support {exc}") from exc
        return np.asarray(self._proba(features))


# --------------------------------------------------------------------------------------------
# The served model
# --------------------------------------------------------------------------------------------

SMOKE_TICKETS: tuple[dict[str, str], ...] = (
    {
        "title": "Application running slow",
        "description": "Report export stuck at 80 percent for several minutes.",
        "source": "web",
        "customer_tier": "Gold",
    },
    {
        "title": "URGENT: production down",
        "description": (
            "All users get HTTP 500 since the deploy. Call +1 555 0100 or ops@example.com"
        ),
        "source": "phone",
        "customer_tier": "Platinum",
    },
    {
        "title": "How do I change my password?",
        "description": "",
        "source": "email",
        "customer_tier": "Free",
    },
    {
        "title": "",
        "description": "Facture en double — ünïcødé ✓ 请帮忙",
        "source": "chat",
        "customer_tier": "Silver",
    },
    {
        "title": "Crash on save",
        "description": "Traceback (most recent call last):\n" + '  File "app.py", line 12\n' * 200,
        "source": "never-seen-source",
        "customer_tier": "Unknown-tier",
    },
    {
        "title": "Billing question",
        "description": "Invoice 12345678 is wrong",
        "source": "api",
        "customer_tier": "Bronze",
    },
)
"""Tickets every model must score before it is served (incl. unseen categories, long text)."""


def rows_to_columns(rows: Sequence[Mapping[str, Any]]) -> Columns:
    """Turn ticket dicts into the four raw feature columns."""
    return {c: [r.get(c) if r.get(c) is not None else "" for r in rows] for c in FEATURE_COLUMNS}


@dataclass
class LoadedModel:
    """A loaded, smoke-tested model version ready to predict.

    Attributes:
        ref: The registry version.
        pipeline: The scikit-learn pipeline.
        classes: Class labels in probability order.
        loaded_at: When it was loaded (UTC).
        metrics: Training metrics of its MLflow run.
        fast: The columnar fast path, or None when the pipeline is used directly.
    """

    ref: ModelRef
    pipeline: Any
    classes: list[str]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    metrics: dict[str, float] = field(default_factory=dict)
    fast: ColumnarPredictor | None = None
    load_seconds: float = 0.0

    @property
    def version(self) -> str:
        """The registry version served."""
        return self.ref.version

    def predict_proba(self, columns: Columns) -> np.ndarray:
        """Return probabilities for a batch given column-wise (see :func:`rows_to_columns`)."""
        if self.fast is not None:
            try:
                return self.fast.predict_proba(columns)
            except Exception as exc:  # never fail where the pipeline would answer
                logger.warning("fast path failed (%r); answering through the pipeline", exc)
        return self.pipeline_proba(columns)

    def pipeline_proba(self, columns: Columns) -> np.ndarray:
        """Return probabilities through the pipeline itself (a pandas frame)."""
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(columns, columns=list(FEATURE_COLUMNS))
        return np.asarray(self.pipeline.predict_proba(frame))

    def labels(self, proba: np.ndarray) -> list[str]:
        """Return the predicted label of each probability row."""
        idx = proba.argmax(axis=1)
        return [self.classes[i] for i in idx.tolist()]


def wrap_model(
    ref: ModelRef, pipeline: Any, *, metrics: Mapping[str, float] | None = None
) -> LoadedModel:
    """Wrap a fitted pipeline, build its fast path and smoke-test both.

    Raises:
        ModelLoadError: When the model cannot score the smoke tickets sensibly.
    """
    if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
        raise ModelLoadError(
            f"{ref.version_uri} is a {type(pipeline).__name__} without predict_proba/classes_"
        )
    classes = [str(c) for c in pipeline.classes_]
    model = LoadedModel(ref=ref, pipeline=pipeline, classes=classes, metrics=dict(metrics or {}))
    columns = rows_to_columns(SMOKE_TICKETS)
    try:
        expected = model.pipeline_proba(columns)
    except Exception as exc:
        raise ModelLoadError(f"{ref.version_uri} failed its smoke test: {exc!r}") from exc
    if expected.shape != (len(SMOKE_TICKETS), len(classes)) or not np.all(np.isfinite(expected)):
        raise ModelLoadError(f"{ref.version_uri} returned unusable probabilities {expected.shape}")
    if not np.allclose(expected.sum(axis=1), 1.0, atol=1e-6):
        raise ModelLoadError(f"{ref.version_uri} returned probabilities that do not sum to 1")
    try:
        fast = ColumnarPredictor(pipeline)
        got = fast.predict_proba(columns)
        if got.shape == expected.shape and np.allclose(got, expected, rtol=0, atol=AGREEMENT_ATOL):
            model.fast = fast
        else:
            logger.warning(
                "fast path disagrees with the pipeline for %s; not used", ref.version_uri
            )
    except Exception as exc:  # any structure the fast path does not know: use the pipeline
        logger.info("fast path unavailable for %s (%s); using the pipeline", ref.version_uri, exc)
    return model


def run_metrics(client: MlflowClient, run_id: str | None) -> dict[str, float]:
    """Return the metrics of the training run (empty when there is none)."""
    if not run_id:
        return {}
    try:
        return {k: float(v) for k, v in client.get_run(run_id).data.metrics.items()}
    except Exception as exc:  # a missing run must not block serving
        logger.warning("could not read metrics of run %s: %s", run_id, exc)
        return {}


def load_model(
    settings: Settings,
    ref: ModelRef,
    client: MlflowClient | None = None,
    *,
    location: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> LoadedModel:
    """Download, load and smoke-test the registry version ``ref``.

    Only the configured registry is used; ``ref`` comes from :func:`resolve_model`.

    Args:
        settings: Tracking and registry URIs.
        ref: The version to load.
        client: An MLflow client on the configured registry (made when needed).
        location: The version's download URI when it is already known (e.g. from
            :mod:`ticket_urgency.registry_prefetch`); the registry is asked otherwise.
        metrics: The metrics of the version's run when already known; read otherwise.

    Raises:
        ModelLoadError: When the artifact is missing/unreadable or the model is broken.
    """
    import mlflow
    import mlflow.sklearn

    if location is None or metrics is None:
        client = client or make_client(settings)
    # artifact URIs such as mlflow-artifacts:/ resolve through the tracking server
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    start = time.perf_counter()
    try:
        if location is None:
            assert client is not None
            location = client.get_model_version_download_uri(ref.name, ref.version)
        pipeline = mlflow.sklearn.load_model(location)
    except Exception as exc:
        raise ModelLoadError(f"could not load {ref.version_uri}: {exc}") from exc
    if metrics is None:
        assert client is not None
        metrics = run_metrics(client, ref.run_id)
    model = wrap_model(ref, pipeline, metrics=metrics)
    model.load_seconds = time.perf_counter() - start
    return model


def load_served_model(settings: Settings, uri: str | None = None) -> LoadedModel:
    """Resolve ``uri`` (default: the configured model URI) and load that version."""
    client = make_client(settings)
    ref = resolve_model(client, uri or settings.model_uri)
    return load_model(settings, ref, client)
