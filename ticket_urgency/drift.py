"""Drift monitoring of new tickets against the frozen reference, with NannyML.

Three layers, from pure to I/O:

* :func:`decide_drift` — the statistical decision rule on already computed features
  (no NannyML, fast enough to calibrate with hundreds of samples). A feature alerts only when
  its shift is **significant** (chi-squared test of homogeneity for categorical features,
  two-sample Kolmogorov-Smirnov for continuous ones, Holm-corrected across all features) **and
  material** (total-variation distance between the category mixes, or the KS distance D,
  above a threshold). The first guards small samples against noise, the second large samples
  against trivially small but significant shifts.
* :func:`compute_drift` — features (``source``, ``customer_tier`` and the text features of
  :mod:`ticket_urgency.text_features`), the decision rule, NannyML per-chunk univariate drift
  and multivariate drift (data reconstruction), and the model-aware part when a model is
  given (prediction drift, CBPE estimated performance, realized performance). No storage or
  MLflow I/O; returns a :class:`DriftReport`.
* :func:`run_drift` — loads the stored reference and new data, resolves the Production model,
  runs :func:`compute_drift`, writes ``monitoring/drift_report_<UTC>.json`` and ``.html`` and
  logs both to an MLflow run ``drift-monitoring`` (tag ``type=monitoring``).

NannyML is imported lazily (it is slow to import, and the serving API never needs it).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ticket_urgency.contract import (
    CATEGORICAL_COLUMNS,
    LABEL_COLUMN,
    TIME_COLUMN,
    labelled,
    sort_by_time,
)
from ticket_urgency.datasets import (
    NEW_KEY,
    REFERENCE_KEY,
    DatasetMissingError,
    load_dataset,
    utc_stamp,
)
from ticket_urgency.errors import UserFacingError
from ticket_urgency.text_features import TOPIC_FEATURE, TextFeatureConfig, TextFeaturizer

if TYPE_CHECKING:
    from ticket_urgency.settings import Settings
    from ticket_urgency.storage import Storage

MONITORING_PREFIX = "monitoring"
REPORT_PREFIX = f"{MONITORING_PREFIX}/drift_report_"
RUN_NAME = "drift-monitoring"
STATUS_DRIFT = "drift"
STATUS_NO_DRIFT = "no_drift"
STATUS_INSUFFICIENT = "insufficient_data"

Progress = Callable[[str], None]


class NoNewDataError(UserFacingError):
    """There is no new data to compare (missing or empty); nothing is written."""


@dataclass(frozen=True)
class DriftConfig:
    """Parameters of the drift decision and of the computation.

    Attributes:
        alpha: Family-wise significance level (Holm correction across features).
        categorical_threshold: Material shift of a category mix (total-variation distance,
            i.e. the share of rows that would have to change category; 0.10 = 10 points).
        continuous_threshold: Material shift of a continuous feature (KS distance D: the
            largest gap between the two cumulative distributions).
        min_rows: Fewer rows than this on either side gives ``insufficient_data``.
        text_sample_rows: Text features use at most this many rows per side (a seeded,
            order-preserving sample); categorical features always use all rows.
        model_sample_rows: Rows per side scored by the model in the model-aware part.
        max_chunks: Upper bound on the number of analysis chunks.
        min_chunk_rows: Lower bound on the rows of a chunk.
        nannyml: Run NannyML (per-chunk values, multivariate drift, CBPE, plots); the
            decision itself never needs it.
        seed: Seed of all sampling.
        text: Text feature configuration.
    """

    alpha: float = 0.05
    categorical_threshold: float = 0.10
    continuous_threshold: float = 0.10
    min_rows: int = 500
    text_sample_rows: int = 20_000
    model_sample_rows: int = 10_000
    max_chunks: int = 40
    min_chunk_rows: int = 100
    nannyml: bool = True
    seed: int = 0
    text: TextFeatureConfig = field(default_factory=TextFeatureConfig)


# --------------------------------------------------------------------------------------------
# The decision rule (pure, no NannyML)
# --------------------------------------------------------------------------------------------


def _shares(counts: pd.Series, limit: int = 50) -> dict[str, float]:
    total = float(counts.sum()) or 1.0
    top = counts.sort_values(ascending=False)
    out = {str(k): round(float(v) / total, 6) for k, v in top.head(limit).items()}
    if len(top) > limit:
        out["__other__"] = round(float(top.iloc[limit:].sum()) / total, 6)
    return out


def _quantiles(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    qs = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
    keys = ("p05", "p25", "p50", "p75", "p95")
    out = {k: round(float(q), 6) for k, q in zip(keys, qs, strict=True)}
    out["mean"] = round(float(values.mean()), 6)
    out["std"] = round(float(values.std()), 6)
    return out


def categorical_test(reference: pd.Series, new: pd.Series) -> dict[str, Any]:
    """Compare two category mixes: chi-squared test of homogeneity and total variation.

    Args:
        reference: Reference values.
        new: New values.

    Returns:
        ``statistic``, ``p_value``, ``effect_size`` (total-variation distance, 0..1),
        ``jensen_shannon`` distance and both distributions as category shares.
    """
    ref_counts = reference.astype(str).value_counts()
    new_counts = new.astype(str).value_counts()
    cats = ref_counts.index.union(new_counts.index)
    table = np.vstack(
        [ref_counts.reindex(cats, fill_value=0).to_numpy(), new_counts.reindex(cats, fill_value=0)]
    ).astype(np.float64)
    p_ref = table[0] / max(table[0].sum(), 1.0)
    p_new = table[1] / max(table[1].sum(), 1.0)
    tvd = 0.5 * float(np.abs(p_ref - p_new).sum())
    mid = 0.5 * (p_ref + p_new)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_ref = np.where(p_ref > 0, p_ref * np.log2(p_ref / mid), 0.0).sum()
        kl_new = np.where(p_new > 0, p_new * np.log2(p_new / mid), 0.0).sum()
    js = math.sqrt(max(0.5 * (kl_ref + kl_new), 0.0))
    if len(cats) < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        statistic, p_value = 0.0, 1.0
    else:
        res = stats.chi2_contingency(table, correction=False)
        statistic, p_value = float(res.statistic), float(res.pvalue)
    return {
        "method": "chi2 + total_variation",
        "statistic": statistic,
        "p_value": p_value,
        "effect_size": tvd,
        "effect_measure": "total_variation_distance",
        "jensen_shannon": js,
        "unseen_categories": sorted(str(c) for c in new_counts.index.difference(ref_counts.index)),
        "reference_distribution": _shares(ref_counts),
        "new_distribution": _shares(new_counts),
    }


def continuous_test(reference: np.ndarray, new: np.ndarray) -> dict[str, Any]:
    """Compare two samples of a continuous feature: two-sample Kolmogorov-Smirnov.

    Args:
        reference: Reference values (NaN dropped).
        new: New values (NaN dropped).

    Returns:
        ``statistic`` (= ``effect_size``, the KS distance D), ``p_value``, the Wasserstein
        distance scaled by the reference standard deviation, and quantile summaries.
    """
    ref = np.asarray(reference, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    cur = np.asarray(new, dtype=np.float64)
    cur = cur[np.isfinite(cur)]
    if ref.size == 0 or cur.size == 0:
        d, p, w = 0.0, 1.0, 0.0
    else:
        res = stats.ks_2samp(ref, cur, method="asymp")
        d, p = float(res.statistic), float(res.pvalue)
        scale = float(ref.std()) or 1.0
        w = float(stats.wasserstein_distance(ref, cur)) / scale
    return {
        "method": "kolmogorov_smirnov",
        "statistic": d,
        "p_value": p,
        "effect_size": d,
        "effect_measure": "ks_distance",
        "wasserstein_scaled": w,
        "reference_distribution": _quantiles(ref),
        "new_distribution": _quantiles(cur),
    }


def holm(p_values: Sequence[float]) -> list[float]:
    """Return Holm-adjusted p-values (family-wise error control, any dependence).

    Args:
        p_values: Raw p-values.

    Returns:
        Adjusted p-values in the input order, each in [0, 1].
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def decide_drift(
    reference: pd.DataFrame,
    new: pd.DataFrame,
    categorical: Sequence[str],
    continuous: Sequence[str],
    config: DriftConfig | None = None,
) -> dict[str, dict[str, Any]]:
    """Apply the drift decision rule to every feature.

    A feature alerts when its Holm-adjusted p-value is below ``config.alpha`` and its effect
    size reaches the threshold of its kind. Columns may have different row counts per feature
    (NaN rows are ignored for continuous features).

    Args:
        reference: Reference feature values.
        new: New feature values.
        categorical: Names of categorical features.
        continuous: Names of continuous features.
        config: Thresholds; defaults to :class:`DriftConfig`.

    Returns:
        One entry per feature (categorical first), with method, statistic, p_value,
        p_value_adjusted, effect_size, threshold, significant, material, alert and the
        reference and new distributions.
    """
    cfg = config or DriftConfig()
    results: dict[str, dict[str, Any]] = {}
    for name in categorical:
        ref, cur = reference[name].dropna(), new[name].dropna()
        results[name] = {"kind": "categorical", **categorical_test(ref, cur)}
        results[name]["threshold"] = cfg.categorical_threshold
        results[name]["rows"] = {"reference": int(ref.size), "new": int(cur.size)}
    for name in continuous:
        ref_v = reference[name].to_numpy(dtype=np.float64)
        cur_v = new[name].to_numpy(dtype=np.float64)
        results[name] = {"kind": "continuous", **continuous_test(ref_v, cur_v)}
        results[name]["threshold"] = cfg.continuous_threshold
        results[name]["rows"] = {
            "reference": int(np.isfinite(ref_v).sum()),
            "new": int(np.isfinite(cur_v).sum()),
        }
    names = list(results)
    adjusted = holm([results[n]["p_value"] for n in names]) if names else []
    for name, p_adj in zip(names, adjusted, strict=True):
        entry = results[name]
        entry["p_value_adjusted"] = p_adj
        entry["correction"] = f"holm over {len(names)} features"
        entry["alpha"] = cfg.alpha
        entry["significant"] = bool(p_adj < cfg.alpha)
        entry["material"] = bool(entry["effect_size"] >= entry["threshold"])
        entry["alert"] = entry["significant"] and entry["material"]
    return results


# --------------------------------------------------------------------------------------------
# Features and chunking
# --------------------------------------------------------------------------------------------


def _sample_positions(n: int, cap: int, seed: int) -> np.ndarray:
    """Seeded, order-preserving sample of ``min(n, cap)`` row positions."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))


def _timestamps(df: pd.DataFrame) -> pd.Series | None:
    if TIME_COLUMN not in df:
        return None
    ts = pd.to_datetime(df[TIME_COLUMN], errors="coerce", utc=True, format="ISO8601")
    if ts.isna().any():
        return None
    return ts.dt.tz_localize(None)


@dataclass(frozen=True)
class Chunking:
    """How rows are split into chunks for the per-chunk values."""

    by: str  # "period" or "size"
    period: str | None = None
    size: int | None = None

    def kwargs(self) -> dict[str, Any]:
        """Arguments for a NannyML calculator."""
        if self.by == "period":
            return {"chunk_period": self.period, "timestamp_column_name": TIME_COLUMN}
        return {"chunk_size": max(int(self.size or 1), 1)}

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"by": self.by, "period": self.period, "size": self.size}


_PERIODS = ("h", "D", "W", "M", "Q", "Y")


def choose_chunking(
    ref_ts: pd.Series | None,
    new_ts: pd.Series | None,
    n_ref: int,
    n_new: int,
    config: DriftConfig,
) -> Chunking:
    """Chunk by ``created_at`` period when both sides have it, else by size.

    The period is the finest of hour, day, week, month, quarter, year that gives at most
    ``max_chunks`` new chunks of ``min_chunk_rows`` rows on average; the size-based chunker
    aims for about ten new chunks, and at least two reference chunks.
    """
    if ref_ts is not None and new_ts is not None and n_new and n_ref:
        for period in _PERIODS:
            n_chunks = new_ts.dt.to_period(period).nunique()
            n_ref_chunks = ref_ts.dt.to_period(period).nunique()
            if (
                n_chunks <= config.max_chunks
                and n_new / n_chunks >= config.min_chunk_rows
                and n_ref / n_ref_chunks >= config.min_chunk_rows
            ):
                return Chunking("period", period=period)
    size = max(config.min_chunk_rows, math.ceil(n_new / 10))
    size = min(size, max(config.min_chunk_rows, n_ref // 2))
    size = max(size, math.ceil(n_new / config.max_chunks))
    return Chunking("size", size=size)


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    """The result of a drift run; :meth:`to_dict` is the JSON report."""

    status: str
    drift_detected: bool
    message: str
    features: dict[str, dict[str, Any]]
    rows: dict[str, Any]
    chunking: dict[str, Any]
    multivariate: dict[str, Any]
    model: dict[str, Any]
    decision: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    report_uri: str | None = None
    html_uri: str | None = None
    mlflow_run_id: str | None = None
    html: str = field(default="", repr=False)

    @property
    def alerted_features(self) -> list[str]:
        """Names of the features that alerted."""
        return [name for name, f in self.features.items() if f.get("alert")]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON report (everything except the HTML)."""
        return _jsonable(
            {
                "drift_detected": self.drift_detected,
                "status": self.status,
                "message": self.message,
                "alerted_features": self.alerted_features,
                "features": self.features,
                "multivariate": self.multivariate,
                "model": self.model,
                "model_version": self.model.get("version"),
                "decision": self.decision,
                "rows": self.rows,
                "chunking": self.chunking,
                "timings_seconds": self.timings,
                "created_at": self.created_at,
                "report_uri": self.report_uri,
                "html_uri": self.html_uri,
                "mlflow_run_id": self.mlflow_run_id,
            }
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, pd.Timestamp | datetime):
        return obj.isoformat()
    if obj is None or isinstance(obj, str | int):
        return obj
    if obj is pd.NaT:
        return None
    return str(obj)


# --------------------------------------------------------------------------------------------
# NannyML parts (lazy import)
# --------------------------------------------------------------------------------------------


def _nannyml() -> Any:
    from ticket_urgency.settings import disable_nannyml_telemetry

    disable_nannyml_telemetry()
    import nannyml

    return nannyml


def _chunk_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per-chunk records (key, indices, dates) of an analysis slice of a NannyML result."""
    chunk_cols = {col[-1]: col for col in df.columns if col[0] == "chunk"}
    wanted = {
        "key": "key",
        "start_index": "start_index",
        "end_index": "end_index",
        "start": "start_date",
        "end": "end_date",
    }
    rows = []
    for _, r in df.iterrows():
        rows.append({out: r[chunk_cols[src]] for out, src in wanted.items() if src in chunk_cols})
    return rows


def _univariate_nannyml(
    ref: pd.DataFrame,
    new: pd.DataFrame,
    categorical: Sequence[str],
    continuous: Sequence[str],
    chunking: Chunking,
) -> tuple[dict[str, list[dict[str, Any]]], list[tuple[str, Any]]]:
    """Per-chunk univariate drift values (JS distance / KS D) and NannyML's figures."""
    nml = _nannyml()
    columns = [*categorical, *continuous]
    calc = nml.UnivariateDriftCalculator(
        column_names=columns,
        treat_as_categorical=list(categorical),
        treat_as_numerical=list(continuous),
        categorical_methods=["jensen_shannon"],
        continuous_methods=["kolmogorov_smirnov"],
        **chunking.kwargs(),
    )
    calc.fit(ref)
    result = calc.calculate(new)
    analysis = result.filter(period="analysis")
    frame = analysis.to_df()
    per_feature: dict[str, list[dict[str, Any]]] = {}
    for name in columns:
        method = "jensen_shannon" if name in categorical else "kolmogorov_smirnov"
        per_feature[name] = _chunk_rows(frame)
        for rec, (_, r) in zip(per_feature[name], frame.iterrows(), strict=True):
            rec["method"] = method
            rec["value"] = r[(name, method, "value")]
            rec["upper_threshold"] = r[(name, method, "upper_threshold")]
            rec["nannyml_alert"] = r[(name, method, "alert")]
    # One figure per feature: plotly's vertical period separators cost quadratic time in the
    # number of subplots, so a single many-feature figure is far slower than these.
    figures = [(name, result.filter(column_names=[name]).plot(kind="drift")) for name in columns]
    return per_feature, figures


def _multivariate_nannyml(
    ref: pd.DataFrame, new: pd.DataFrame, columns: Sequence[str], chunking: Chunking
) -> tuple[dict[str, Any], Any]:
    """NannyML data-reconstruction drift (PCA reconstruction error) over all features."""
    nml = _nannyml()
    calc = nml.DataReconstructionDriftCalculator(column_names=list(columns), **chunking.kwargs())
    calc.fit(ref)
    result = calc.calculate(new)
    frame = result.filter(period="analysis").to_df()
    ref_frame = result.filter(period="reference").to_df()
    metric = "reconstruction_error"
    chunks = _chunk_rows(frame)
    for rec, (_, r) in zip(chunks, frame.iterrows(), strict=True):
        rec["value"] = r[(metric, "value")]
        rec["upper_threshold"] = r[(metric, "upper_threshold")]
        rec["lower_threshold"] = r[(metric, "lower_threshold")]
        rec["alert"] = r[(metric, "alert")]
    n_alerts = int(sum(bool(c["alert"]) for c in chunks))
    section = {
        "method": "nannyml.DataReconstructionDriftCalculator (PCA reconstruction error)",
        "features": list(columns),
        "reference_mean_error": float(ref_frame[(metric, "value")].mean()),
        "new_mean_error": float(frame[(metric, "value")].mean()),
        "upper_threshold": chunks[0]["upper_threshold"] if chunks else None,
        "alerted_chunks": n_alerts,
        "chunks_total": len(chunks),
        "alert": n_alerts > 0,
        "counts_toward_decision": False,
        "note": (
            "NannyML's threshold is the reference chunks' mean +/- 3 std; it is informative "
            "and does not enter drift_detected, whose rule is calibrated across sample sizes."
        ),
        "chunks": chunks,
    }
    return section, result.plot(kind="drift")


# --------------------------------------------------------------------------------------------
# Model-aware part
# --------------------------------------------------------------------------------------------


@dataclass
class ModelInput:
    """What the model-aware part needs: a fitted classifier and labelled held-out rows.

    Attributes:
        model: A fitted classifier with ``predict_proba`` and ``classes_`` over the raw
            ticket columns (the registered sklearn flavour).
        version: Registry version (for the report).
        held_out: Labelled reference rows the model did not train on (CBPE fit data).
        held_out_note: How ``held_out`` was chosen.
        uri: The model URI.
    """

    model: Any
    version: str | None
    held_out: pd.DataFrame
    held_out_note: str
    uri: str | None = None


def _proba_frame(model: Any, df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    classes = [str(c) for c in model.classes_]
    proba = np.asarray(model.predict_proba(df), dtype=np.float64)
    frame = pd.DataFrame(proba, columns=[f"proba_{i}" for i in range(len(classes))], index=df.index)
    frame["y_pred"] = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    return frame, classes


def _macro_scores(y_true: pd.Series, y_pred: pd.Series, labels: list[str]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "f1_macro": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "rows": int(len(y_true)),
    }


def _model_section(
    info: ModelInput,
    new: pd.DataFrame,
    config: DriftConfig,
    progress: Progress,
    figures: list[tuple[str, Any]],
) -> dict[str, Any]:
    held = info.held_out
    held = held.iloc[_sample_positions(len(held), config.model_sample_rows, config.seed + 7)]
    new_s = new.iloc[_sample_positions(len(new), config.model_sample_rows, config.seed + 8)]
    progress(f"model: scoring {len(held)} held-out reference and {len(new_s)} new rows")
    ref_p, classes = _proba_frame(info.model, held)
    new_p, _ = _proba_frame(info.model, new_s)
    ref_p["y_true"] = held[LABEL_COLUMN].astype(str).to_numpy()
    section: dict[str, Any] = {
        "status": "ok",
        "version": info.version,
        "uri": info.uri,
        "classes": classes,
        "sample_rows": {"reference_held_out": len(held), "new": len(new_s)},
        "held_out": info.held_out_note,
    }
    pred = categorical_test(ref_p["y_pred"], new_p["y_pred"])
    p_sig = pred["p_value"] < config.alpha
    material = pred["effect_size"] >= config.categorical_threshold
    section["prediction_drift"] = {
        **pred,
        "threshold": config.categorical_threshold,
        "significant": bool(p_sig),
        "material": bool(material),
        "alert": bool(p_sig and material),
    }
    known = ref_p["y_true"].isin(classes)
    baseline = _macro_scores(ref_p.loc[known, "y_true"], ref_p.loc[known, "y_pred"], classes)
    section["reference_performance"] = baseline
    new_labels = new_s[LABEL_COLUMN] if LABEL_COLUMN in new_s else pd.Series("", index=new_s.index)
    new_lab = new_labels.fillna("").astype(str).str.strip() != ""
    if new_lab.any():
        y_true = new_s.loc[new_lab, LABEL_COLUMN].astype(str)
        realized: dict[str, Any] = dict(
            _macro_scores(y_true, new_p.loc[new_lab, "y_pred"], classes)
        )
        realized["unknown_labels"] = sorted(set(y_true) - set(classes))
        section["realized_performance"] = realized
    else:
        section["realized_performance"] = {"status": "no labels in new data"}
    if not config.nannyml:
        section["estimated_performance"] = {"status": "skipped (nannyml disabled)"}
        return section
    progress("model: CBPE estimated performance")
    nml = _nannyml()
    ref_fit = ref_p[known].copy()
    if ref_fit["y_true"].nunique() < len(classes):
        section["estimated_performance"] = {
            "status": "skipped",
            "reason": "the held-out reference does not contain every class the model predicts",
        }
        return section
    proba_cols = {c: f"proba_{i}" for i, c in enumerate(classes)}
    chunk_size = max(config.min_chunk_rows, math.ceil(len(new_p) / 10))
    chunk_size = min(chunk_size, max(config.min_chunk_rows, len(ref_fit) // 2))
    estimator = nml.CBPE(
        problem_type="classification_multiclass",
        y_pred_proba=proba_cols,
        y_pred="y_pred",
        y_true="y_true",
        metrics=["f1", "accuracy"],
        chunk_size=chunk_size,
    )
    estimator.fit(ref_fit)
    est = estimator.estimate(new_p)
    frame = est.filter(period="analysis").to_df()
    chunks = _chunk_rows(frame)
    for rec, (_, r) in zip(chunks, frame.iterrows(), strict=True):
        for metric in ("f1", "accuracy"):
            rec[f"estimated_{metric}"] = r[(metric, "value")]
            rec[f"{metric}_lower_threshold"] = r[(metric, "lower_threshold")]
            rec[f"{metric}_alert"] = r[(metric, "alert")]
    sizes = np.array([c["end_index"] - c["start_index"] + 1 for c in chunks], dtype=np.float64)
    est_f1 = np.array([c["estimated_f1"] for c in chunks], dtype=np.float64)
    est_acc = np.array([c["estimated_accuracy"] for c in chunks], dtype=np.float64)
    w = sizes / sizes.sum() if sizes.sum() else sizes
    section["estimated_performance"] = {
        "method": "nannyml.CBPE (classification_multiclass), fitted on held-out reference",
        "f1_macro": float(np.nansum(w * est_f1)),
        "accuracy": float(np.nansum(w * est_acc)),
        "drop_vs_reference_f1": float(baseline["f1_macro"] - np.nansum(w * est_f1)),
        "alerted_chunks": int(sum(bool(c["f1_alert"]) for c in chunks)),
        "chunk_size": chunk_size,
        "chunks": chunks,
    }
    figures.append(("Estimated performance (CBPE)", est.plot()))
    return section


# --------------------------------------------------------------------------------------------
# compute_drift: the pure middle
# --------------------------------------------------------------------------------------------


def _noop(_: str) -> None:
    return None


def compute_drift(
    reference: pd.DataFrame,
    new: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    model: ModelInput | None = None,
    model_note: str | None = None,
    progress: Progress | None = None,
) -> DriftReport:
    """Compute the drift report of ``new`` against ``reference`` without any I/O.

    Args:
        reference: Reference tickets (``title``, ``description``, ``source``,
            ``customer_tier``; ``created_at`` optional).
        new: New tickets, same columns; must not be empty.
        config: Decision thresholds and computation settings.
        model: The model-aware input, or None to skip that part.
        model_note: Why the model part is skipped (reported when ``model`` is None).
        progress: Called with a short message before each long step.

    Returns:
        The report; ``report.html`` holds the HTML report with NannyML's plots.

    Raises:
        NoNewDataError: When ``new`` has no rows.
    """
    cfg = config or DriftConfig()
    say = progress or _noop
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if new.empty:
        raise NoNewDataError("the new data is empty; nothing to compare with the reference")
    reference = sort_by_time(reference).reset_index(drop=True)
    new = sort_by_time(new).reset_index(drop=True)
    ref_ts, new_ts = _timestamps(reference), _timestamps(new)
    if ref_ts is None or new_ts is None:
        ref_ts = new_ts = None
    n_ref, n_new = len(reference), len(new)
    enough = n_ref >= cfg.min_rows and n_new >= cfg.min_rows

    # Text features: fit on one part of the reference, compare the other part with new data.
    say(f"text features: fitting on the reference ({n_ref} rows)")
    ref_text_pos = _sample_positions(n_ref, 2 * cfg.text_sample_rows, cfg.seed + 1)
    from ticket_urgency.text_features import split_reference

    fit_local, cmp_local = split_reference(len(ref_text_pos), cfg.text)
    fit_pos, cmp_pos = ref_text_pos[fit_local], ref_text_pos[cmp_local]
    cmp_pos = cmp_pos[_sample_positions(len(cmp_pos), cfg.text_sample_rows, cfg.seed + 2)]
    featurizer = TextFeaturizer(cfg.text).fit(reference.iloc[fit_pos])
    new_text_pos = _sample_positions(n_new, cfg.text_sample_rows, cfg.seed + 3)
    say(f"text features: {len(cmp_pos)} reference and {len(new_text_pos)} new rows")
    ref_text = featurizer.transform(reference.iloc[cmp_pos])
    new_text = featurizer.transform(new.iloc[new_text_pos])
    timings["text_features"] = time.perf_counter() - t0

    categorical = list(CATEGORICAL_COLUMNS)
    continuous = featurizer.feature_names
    t1 = time.perf_counter()
    cat_results = decide_drift(reference, new, categorical, [], cfg)
    text_results = decide_drift(ref_text, new_text, [TOPIC_FEATURE], continuous, cfg)
    # One Holm family across every feature.
    features = {**cat_results, **text_results}
    adjusted = holm([f["p_value"] for f in features.values()])
    for (name, entry), p_adj in zip(features.items(), adjusted, strict=True):
        entry["p_value_adjusted"] = p_adj
        entry["correction"] = f"holm over {len(features)} features"
        entry["significant"] = bool(p_adj < cfg.alpha)
        entry["alert"] = entry["significant"] and entry["material"] and enough
        entry["source"] = "ticket column" if name in categorical else "text-derived"
        entry["sample"] = (
            "all rows"
            if name in categorical
            else f"{len(cmp_pos)} held-out reference rows, {len(new_text_pos)} new rows"
        )
    timings["decision"] = time.perf_counter() - t1

    chunk_ref = len(cmp_pos)
    chunking = choose_chunking(ref_ts, new_ts, n_ref, n_new, cfg)
    text_chunking = chunking
    if chunking.by == "size":
        text_chunking = choose_chunking(None, None, chunk_ref, len(new_text_pos), cfg)
    figures: list[tuple[str, Any]] = []
    multivariate: dict[str, Any] = {"status": "skipped (nannyml disabled)"}
    if cfg.nannyml:
        t2 = time.perf_counter()
        say("nannyml: univariate drift per chunk")
        ref_cat = reference[categorical].copy()
        new_cat = new[categorical].copy()
        ref_txt = ref_text.copy()
        new_txt = new_text.copy()
        if ref_ts is not None and new_ts is not None:
            ref_cat[TIME_COLUMN] = ref_ts.to_numpy()
            new_cat[TIME_COLUMN] = new_ts.to_numpy()
            ref_txt[TIME_COLUMN] = ref_ts.iloc[cmp_pos].to_numpy()
            new_txt[TIME_COLUMN] = new_ts.iloc[new_text_pos].to_numpy()
        cat_chunks, cat_fig = _univariate_nannyml(ref_cat, new_cat, categorical, [], chunking)
        ref_txt[categorical] = reference[categorical].iloc[cmp_pos].to_numpy()
        new_txt[categorical] = new[categorical].iloc[new_text_pos].to_numpy()
        txt_chunks, txt_fig = _univariate_nannyml(
            ref_txt, new_txt, [TOPIC_FEATURE], continuous, text_chunking
        )
        for name, chunks in {**cat_chunks, **txt_chunks}.items():
            features[name]["chunks"] = chunks
        figures += [(f"Univariate drift: {name}", fig) for name, fig in [*cat_fig, *txt_fig]]
        timings["nannyml_univariate"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        say("nannyml: multivariate drift (data reconstruction)")
        multivariate, mv_fig = _multivariate_nannyml(
            ref_txt, new_txt, [*categorical, TOPIC_FEATURE, *continuous], text_chunking
        )
        figures.append(("Multivariate drift (data reconstruction error)", mv_fig))
        timings["nannyml_multivariate"] = time.perf_counter() - t3
    else:
        for entry in features.values():
            entry["chunks"] = []

    t4 = time.perf_counter()
    if model is None:
        model_section: dict[str, Any] = {
            "status": "skipped",
            "reason": model_note or "no Production model registered",
            "version": None,
        }
    elif not enough:
        model_section = {
            "status": "skipped",
            "reason": "insufficient data",
            "version": model.version,
        }
    else:
        model_section = _model_section(model, new, cfg, say, figures)
    timings["model"] = time.perf_counter() - t4

    alerted = [n for n, f in features.items() if f["alert"]]
    if not enough:
        status, detected = STATUS_INSUFFICIENT, False
        message = (
            f"insufficient data: {n_ref} reference and {n_new} new rows; at least "
            f"{cfg.min_rows} on each side are needed for a verdict (drift_detected is false)"
        )
    elif alerted:
        status, detected = STATUS_DRIFT, True
        message = "drift detected in " + ", ".join(alerted)
    else:
        status, detected = STATUS_NO_DRIFT, False
        message = "no material drift"
    decision = {
        "rule": (
            "a feature alerts when its Holm-adjusted p-value < alpha AND its effect size >= "
            "threshold; drift_detected = any feature alerts"
        ),
        "alpha": cfg.alpha,
        "categorical_threshold": cfg.categorical_threshold,
        "categorical_effect": "total_variation_distance",
        "continuous_threshold": cfg.continuous_threshold,
        "continuous_effect": "ks_distance",
        "min_rows": cfg.min_rows,
        "features_tested": len(features),
    }
    rows = {
        "reference": n_ref,
        "new": n_new,
        "new_labelled": int(len(labelled(new))) if LABEL_COLUMN in new else 0,
        "reference_text_fit": len(fit_pos),
        "reference_text_compare": len(cmp_pos),
        "new_text_sample": len(new_text_pos),
    }
    timings["total"] = time.perf_counter() - t0
    report = DriftReport(
        status=status,
        drift_detected=detected,
        message=message,
        features=features,
        rows=rows,
        chunking={
            "ticket_columns": chunking.to_dict(),
            "text_features": text_chunking.to_dict(),
            "created_at_used": ref_ts is not None,
        },
        multivariate=multivariate,
        model=model_section,
        decision=decision,
        timings={k: round(v, 3) for k, v in timings.items()},
    )
    if figures or cfg.nannyml:
        report.html = render_html(report, figures)
    return report


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------


def render_html(report: DriftReport, figures: Sequence[tuple[str, Any]]) -> str:
    """Render the report as one HTML page: a summary table and NannyML's plotly figures.

    plotly.js is loaded from its CDN (``include_plotlyjs="cdn"``), which keeps each report
    small; viewing it needs network access to cdn.plot.ly.
    """
    import html as html_lib

    esc = html_lib.escape
    rows = []
    for name, f in report.features.items():
        rows.append(
            "<tr>"
            f"<td>{esc(name)}</td><td>{esc(f['method'])}</td>"
            f"<td>{f['effect_size']:.4f}</td><td>{f['threshold']:.2f}</td>"
            f"<td>{f['p_value_adjusted']:.3g}</td>"
            f"<td style='color:{'#c00' if f['alert'] else '#070'}'>"
            f"{'ALERT' if f['alert'] else 'ok'}</td></tr>"
        )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>ticket_urgency drift report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px}</style></head><body>",
        "<h1>Drift report</h1>",
        f"<p><b>Status:</b> {esc(report.status)} &mdash; {esc(report.message)}</p>",
        f"<p>Created {esc(report.created_at)}; rows: {esc(json.dumps(report.rows))}</p>",
        f"<p>Decision rule: {esc(report.decision['rule'])}</p>",
        "<table><tr><th>feature</th><th>method</th><th>effect size</th><th>threshold</th>"
        "<th>adjusted p</th><th>verdict</th></tr>",
        *rows,
        "</table>",
        f"<h2>Model</h2><pre>{esc(_model_summary(report.model))}</pre>",
    ]
    first = True
    for title, fig in figures:
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs="cdn" if first else False))
        first = False
    parts.append("</body></html>")
    return "\n".join(parts)


def _model_summary(model: Mapping[str, Any]) -> str:
    keep = {k: v for k, v in model.items() if k not in ("estimated_performance",)}
    est = model.get("estimated_performance")
    if isinstance(est, Mapping):
        keep["estimated_performance"] = {k: v for k, v in est.items() if k != "chunks"}
    pred = keep.get("prediction_drift")
    if isinstance(pred, Mapping):
        keep["prediction_drift"] = {
            k: pred[k] for k in ("effect_size", "p_value", "alert") if k in pred
        }
    return json.dumps(_jsonable(keep), indent=2)


# --------------------------------------------------------------------------------------------
# I/O edges: model resolution, storage, MLflow
# --------------------------------------------------------------------------------------------

HELD_OUT_FRACTION = 0.2


def newest_fraction(df: pd.DataFrame, fraction: float = HELD_OUT_FRACTION) -> pd.DataFrame:
    """Return the newest ``fraction`` of the labelled rows (by ``created_at``, else row order).

    This is the project's evaluation convention (training tests on it, promotion scores on
    it), so these rows are the model's held-out data.
    """
    rows = sort_by_time(labelled(df))
    n = max(1, int(round(len(rows) * fraction))) if len(rows) else 0
    return rows.iloc[len(rows) - n :]


def _snapshot_key(uri: str | None) -> str | None:
    """The storage key of a ``datasets/snapshots/<digest>.csv`` URI, if it is one."""
    from ticket_urgency.datasets import SNAPSHOT_PREFIX

    marker = f"{SNAPSHOT_PREFIX}/"
    if not uri or marker not in uri:
        return None
    name = uri.split(marker, 1)[1]
    return f"{SNAPSHOT_PREFIX}/{name}" if name.endswith(".csv") and "/" not in name else None


def _test_split_ids(settings: Settings, run_id: str | None) -> set[str] | None:
    """Ticket ids of the training run's test split (its ``evaluation/test_predictions.csv``)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path="evaluation/test_predictions.csv",
            tracking_uri=settings.mlflow_tracking_uri,
        )
    except (MlflowException, OSError):
        return None
    ids = pd.read_csv(path, usecols=["ticket_id"], dtype=str)["ticket_id"]
    return set(ids.dropna())


def held_out_rows(
    settings: Settings,
    storage: Storage,
    reference: pd.DataFrame,
    run_id: str | None,
    snapshot_uri: str | None,
) -> tuple[pd.DataFrame, str]:
    """Choose labelled rows the model did not train on, for fitting CBPE.

    In order of preference: the training run's test split (ids from its logged test
    predictions, rows from its data snapshot); the newest 20% of the snapshot's labelled rows
    (the training split convention); the newest 20% of the labelled reference rows.

    Returns:
        ``(rows, note)``; the note says which choice was made.
    """
    from ticket_urgency.contract import ID_COLUMN, parse_tickets

    key = _snapshot_key(snapshot_uri)
    snapshot = None
    if key is not None and storage.exists(key):
        snapshot = parse_tickets(storage.read_bytes(key), storage.uri(key))
    ids = _test_split_ids(settings, run_id)
    if snapshot is not None and ids:
        held = labelled(snapshot[snapshot[ID_COLUMN].isin(ids)])
        if len(held) >= 10:
            return held, f"the training run's test split ({len(held)} rows of its data snapshot)"
    if snapshot is not None and len(labelled(snapshot)) >= 10:
        held = newest_fraction(snapshot)
        return held, (
            f"newest {HELD_OUT_FRACTION:.0%} of the labelled rows of the training snapshot "
            f"({len(held)} rows; the training split convention)"
        )
    held = newest_fraction(reference)
    return held, (
        f"newest {HELD_OUT_FRACTION:.0%} of the labelled reference rows ({len(held)} rows); "
        "the model's training data was not found, so these are held out only by convention"
    )


def load_production_model(
    settings: Settings, storage: Storage, reference: pd.DataFrame
) -> tuple[ModelInput | None, str]:
    """Load the Production model (stage Production, else alias ``production``).

    Returns:
        ``(model input or None, note)``; None with the reason when no model is in production
        or it cannot be used.
    """
    from mlflow.exceptions import MlflowException

    from ticket_urgency.registry import load_model, production_version

    version = production_version(settings)
    if version is None:
        return None, f"no version of {settings.model_name!r} is in production"
    uri = f"models:/{version.name}/{version.version}"
    try:
        loaded = load_model(settings, uri)
    except (MlflowException, UserFacingError, OSError, ValueError, ImportError) as exc:
        return None, f"could not load {uri}: {exc}"
    model = loaded.model
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        return None, f"{uri} has no predict_proba/classes_; model-aware monitoring skipped"
    tags = dict(version.tags or {})
    held, note = held_out_rows(
        settings, storage, reference, loaded.run_id, tags.get("data_snapshot_uri")
    )
    info = ModelInput(
        model=model, version=str(version.version), held_out=held, held_out_note=note, uri=uri
    )
    return info, note


def load_inputs(storage: Storage) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load the stored reference and new data.

    Raises:
        DatasetMissingError: When no reference is stored.
        NoNewDataError: When there is no new data, or it has no rows.
    """
    if not storage.exists(NEW_KEY):
        raise NoNewDataError(
            f"no new data at {storage.uri(NEW_KEY)}; upload some with `upload --new` first"
        )
    if not storage.read_bytes(NEW_KEY).strip():
        raise NoNewDataError(f"the new data at {storage.uri(NEW_KEY)} is empty")
    reference = load_dataset(storage, REFERENCE_KEY, labels="required")
    try:
        new = load_dataset(storage, NEW_KEY)
    except DatasetMissingError:
        raise NoNewDataError(f"no new data at {storage.uri(NEW_KEY)}") from None
    except ValueError as exc:
        if "no rows" in str(exc) or "is empty" in str(exc):
            raise NoNewDataError(f"the new data at {storage.uri(NEW_KEY)} has no rows") from None
        raise
    return reference, new


def _log_to_mlflow(settings: Settings, report: DriftReport, json_name: str, html_name: str) -> str:
    """Log the report pair as artifacts of a monitoring run; return the run id.

    Inside ``mlflow run`` (or a caller's active run) it logs into that run; otherwise it
    starts a run named ``drift-monitoring`` in the project's experiment.
    """
    import mlflow

    from ticket_urgency.mlflow_utils import training_run

    with training_run(settings, run_name=RUN_NAME) as run:
        mlflow.set_tags({"type": "monitoring", "drift_status": report.status})
        mlflow.log_params(
            {
                "drift_alpha": report.decision["alpha"],
                "drift_categorical_threshold": report.decision["categorical_threshold"],
                "drift_continuous_threshold": report.decision["continuous_threshold"],
                "drift_min_rows": report.decision["min_rows"],
                "drift_model_version": report.model.get("version"),
            }
        )
        metrics = {
            "drift_detected": float(report.drift_detected),
            "features_alerted": float(len(report.alerted_features)),
            "rows_reference": float(report.rows["reference"]),
            "rows_new": float(report.rows["new"]),
        }
        for name, f in report.features.items():
            metrics[f"effect_{name}"] = float(f["effect_size"])
        est = report.model.get("estimated_performance")
        if isinstance(est, Mapping) and "f1_macro" in est:
            metrics["estimated_f1_macro"] = float(est["f1_macro"])
        mlflow.log_metrics(metrics)
        run_id: str = run.info.run_id
        report.mlflow_run_id = run_id
        mlflow.log_dict(report.to_dict(), f"{MONITORING_PREFIX}/{json_name}")
        mlflow.log_text(report.html, f"{MONITORING_PREFIX}/{html_name}")
    return run_id


def run_drift(
    settings: Settings,
    storage: Storage | None = None,
    *,
    now: datetime | None = None,
    config: DriftConfig | None = None,
    progress: Progress | None = None,
    log_mlflow: bool = True,
) -> DriftReport:
    """Run drift monitoring on the stored data and store the report pair.

    Writes ``monitoring/drift_report_<UTC stamp>.json`` and ``.html`` to the storage and logs
    both as artifacts of an MLflow run ``drift-monitoring`` (tag ``type=monitoring``) in
    ``settings.experiment_name``. Nothing is written when there is no new data.

    Args:
        settings: Project settings (storage, MLflow URIs, model name, ``drift_min_rows``).
        storage: Storage to use; opened from ``settings.storage`` when None.
        now: Timestamp for the report names (default: current UTC time).
        config: Decision configuration (default: :class:`DriftConfig` with
            ``min_rows=settings.drift_min_rows``).
        progress: Called with a short message before each long step.
        log_mlflow: Also log the reports to MLflow.

    Returns:
        The report, with ``report_uri``, ``html_uri`` and ``mlflow_run_id`` set.

    Raises:
        NoNewDataError: When there is no new data or it is empty.
        DatasetMissingError: When no reference is stored.
    """
    from dataclasses import replace

    from ticket_urgency.storage import open_storage

    store = storage if storage is not None else open_storage(settings.storage, settings)
    cfg = config or DriftConfig(min_rows=settings.drift_min_rows)
    say = progress or _noop
    say("loading reference and new data")
    reference, new = load_inputs(store)
    if new.empty:
        raise NoNewDataError(f"the new data at {store.uri(NEW_KEY)} has no rows")
    say("resolving the Production model")
    model, note = load_production_model(settings, store, reference)
    report = compute_drift(reference, new, replace(cfg), model=model, model_note=note, progress=say)
    stamp = utc_stamp(now)
    json_name, html_name = f"drift_report_{stamp}.json", f"drift_report_{stamp}.html"
    report.created_at = (now or datetime.now(UTC)).isoformat()
    report.report_uri = store.uri(f"{MONITORING_PREFIX}/{json_name}")
    report.html_uri = store.uri(f"{MONITORING_PREFIX}/{html_name}")
    if log_mlflow:
        say("logging the report to MLflow")
        _log_to_mlflow(settings, report, json_name, html_name)
    store.write_bytes(f"{MONITORING_PREFIX}/{html_name}", report.html.encode("utf-8"))
    store.write_bytes(
        f"{MONITORING_PREFIX}/{json_name}",
        json.dumps(report.to_dict(), indent=2).encode("utf-8"),
    )
    return report


def latest_report(storage: Storage) -> dict[str, Any] | None:
    """Return the newest stored drift report (JSON), or None when there is none."""
    keys = [
        k
        for k in storage.list(MONITORING_PREFIX)
        if k.startswith(REPORT_PREFIX) and k.endswith(".json")
    ]
    if not keys:
        return None
    data: dict[str, Any] = json.loads(storage.read_bytes(max(keys)))
    return data
