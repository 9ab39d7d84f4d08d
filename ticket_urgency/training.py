"""Training: load the labelled data, split, search, fit, evaluate, log to MLflow, register.

:func:`train` is what ``ticket-urgency train``, the Dagster asset ``ticket_urgency_model`` and
``mlflow run . -e train`` call.

Serialization: the pipeline is logged with ``serialization_format="cloudpickle"`` and the
project's own transformer module is pickled *by value*
(:func:`cloudpickle.register_pickle_by_value`). skops, MLflow's default, is not safer here (in
MLflow 3.17 both are gated by the same ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` switch, and the
skops trusted-types list is read from the model itself), would need a trusted-types list for
:class:`~ticket_urgency.model.TicketPreprocessor`, and loads a large char-n-gram vocabulary
about 60 times slower. By-value pickling makes each artifact self-contained: it loads with
scikit-learn, numpy, scipy and pandas alone, and a later change of ``ticket_urgency.model``
cannot change what an old version computes. Load only models from a registry you trust.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from ticket_urgency import model as model_module
from ticket_urgency.contract import (
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    TIME_COLUMN,
    labelled,
    read_ticket_file,
    sort_by_time,
)
from ticket_urgency.datasets import (
    REFERENCE_KEY,
    DatasetMissingError,
    ensure_combined,
    load_dataset,
    snapshot,
)
from ticket_urgency.errors import UserFacingError
from ticket_urgency.mlflow_utils import training_run
from ticket_urgency.model import SEARCH_GRID, build_classifier, build_features, resolve_params
from ticket_urgency.settings import Settings
from ticket_urgency.storage import Storage, open_storage

MODEL_ARTIFACT = "model"
MIN_ROWS = 20
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<!\w)\+?\d[\d ()./-]{6,}\d(?!\w)")


@dataclass
class TrainingData:
    """Labelled tickets and where they came from."""

    frame: pd.DataFrame
    source: str
    kind: str


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str
    version: str
    model_name: str
    model_uri: str
    metrics: dict[str, float]
    params: dict[str, Any]
    data_source: str
    data_digest: str
    snapshot_uri: str
    n_train: int
    n_test: int
    labels: list[str] = field(default_factory=list)
    baseline_macro_f1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def load_training_data(settings: Settings, data: str = "combined") -> TrainingData:
    """Load the labelled rows to train on.

    Args:
        settings: Settings (storage root).
        data: ``"combined"`` (the stored combined set, rebuilt when stale; falls back to the
            reference), ``"reference"``, or the path of a local ticket CSV.

    Returns:
        The labelled rows and a description of their source.

    Raises:
        UserFacingError: When nothing is stored yet or there are too few labelled rows.
        DataContractError: When a given file breaks the contract.
    """
    if data in ("combined", "reference"):
        storage = open_storage(settings.storage, settings)
        try:
            if data == "combined":
                try:
                    frame, _ = ensure_combined(storage, retention_days=settings.retention_days)
                    kind, source = "combined", storage.uri("datasets/combined_tickets.csv")
                except DatasetMissingError:
                    frame = load_dataset(storage, REFERENCE_KEY, labels="required")
                    kind, source = "reference", storage.uri(REFERENCE_KEY)
            else:
                frame = load_dataset(storage, REFERENCE_KEY, labels="required")
                kind, source = "reference", storage.uri(REFERENCE_KEY)
        except DatasetMissingError:
            raise UserFacingError(
                f"no training data in {settings.storage}: run `ticket-urgency upload "
                "--reference tickets.csv` first (or pass --data PATH)"
            ) from None
    else:
        frame = read_ticket_file(data, labels="optional")
        kind, source = "file", data
    frame = labelled(frame).reset_index(drop=True)
    if len(frame) < MIN_ROWS:
        raise UserFacingError(
            f"{source}: column '{LABEL_COLUMN}' has only {len(frame)} labelled rows; "
            f"training needs at least {MIN_ROWS}"
        )
    if frame[LABEL_COLUMN].nunique() < 2:
        raise UserFacingError(
            f"{source}: column '{LABEL_COLUMN}' holds a single label "
            f"({frame[LABEL_COLUMN].iloc[0]!r}); training needs at least two"
        )
    return TrainingData(frame, source, kind)


def split_newest(
    df: pd.DataFrame, fraction: float, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off a held-out part.

    With ``created_at`` the split is by time: the newest ``fraction`` of the rows is held out.
    Without it the split is random and stratified by label (when every label has two rows).

    Returns:
        ``(older, newest)``.
    """
    n_test = max(1, min(len(df) - 1, int(round(len(df) * fraction))))
    if TIME_COLUMN in df.columns:
        ordered = sort_by_time(df)
        return ordered.iloc[:-n_test], ordered.iloc[-n_test:]
    labels = df[LABEL_COLUMN]
    counts = labels.value_counts()
    stratify = labels if counts.min() >= 2 and n_test >= len(counts) else None
    train, test = train_test_split(df, test_size=n_test, random_state=seed, stratify=stratify)
    return train, test


def _metric_key(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", str(text)) or "_"


def expected_calibration_error(
    proba: np.ndarray, y_true: Sequence[str] | np.ndarray, classes: Sequence[str], bins: int = 10
) -> float:
    """Return the top-label expected calibration error (equal-width confidence bins)."""
    conf = proba.max(axis=1)
    pred = np.asarray(classes)[proba.argmax(axis=1)]
    correct = pred == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def evaluate(pipe: Pipeline, df: pd.DataFrame) -> dict[str, float]:
    """Score a fitted pipeline on labelled tickets.

    Returns:
        ``macro_f1``, ``accuracy``, ``weighted_f1``, ``precision_<label>``, ``recall_<label>``,
        ``f1_<label>`` and, when the model gives probabilities, ``brier``, ``log_loss`` and
        ``ece`` (top-label expected calibration error).
    """
    y = df[LABEL_COLUMN].astype(str).to_numpy()
    pred = np.asarray(pipe.predict(df[list(FEATURE_COLUMNS)])).astype(str)
    labels = sorted(set(y) | set(pred))
    metrics: dict[str, float] = {
        "macro_f1": float(f1_score(y, pred, average="macro", labels=labels, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "weighted_f1": float(f1_score(y, pred, average="weighted", zero_division=0)),
    }
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        key = _metric_key(label)
        metrics[f"precision_{key}"] = float(p[i])
        metrics[f"recall_{key}"] = float(r[i])
        metrics[f"f1_{key}"] = float(f[i])
    if hasattr(pipe, "predict_proba"):
        classes = [str(c) for c in pipe.classes_]
        proba = pipe.predict_proba(df[list(FEATURE_COLUMNS)])
        onehot = (np.asarray(classes)[None, :] == y[:, None]).astype(float)
        metrics["brier"] = float(((proba - onehot) ** 2).sum(axis=1).mean())
        metrics["ece"] = expected_calibration_error(proba, y, classes)
        if set(y) <= set(classes):
            metrics["log_loss"] = float(log_loss(y, proba, labels=classes))
    return metrics


def search(
    train: pd.DataFrame,
    val: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    grid: Sequence[Mapping[str, Any]] = SEARCH_GRID,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Pick classifier hyperparameters on a validation split.

    The text features are fitted once on ``train``; each grid entry only refits the
    classifier, scored by macro-F1 on ``val``. Fixed ``params`` are applied to every candidate.

    Returns:
        ``(best params, one row per candidate with its score)``.
    """
    base = resolve_params(params)
    features = build_features(base)
    x_train = features.fit_transform(train[list(FEATURE_COLUMNS)])
    x_val = features.transform(val[list(FEATURE_COLUMNS)])
    y_train, y_val = train[LABEL_COLUMN].to_numpy(), val[LABEL_COLUMN].to_numpy()
    min_count = int(pd.Series(y_train).value_counts().min())
    rows: list[dict[str, Any]] = []
    best: tuple[float, dict[str, Any]] = (-1.0, base)
    for candidate in grid:
        cand = resolve_params({**base, **candidate})
        cand["calibration_cv"] = max(2, min(int(cand["calibration_cv"]), min_count))
        clf = build_classifier(cand)
        clf.fit(x_train, y_train)
        score = float(f1_score(y_val, clf.predict(x_val), average="macro", zero_division=0))
        rows.append({**dict(candidate), "val_macro_f1": score})
        if score > best[0]:
            best = (score, {**base, **candidate})
    return best[1], rows


def mask_example(df: pd.DataFrame) -> pd.DataFrame:
    """Mask e-mail addresses and phone numbers in the text of an input example."""
    out = df.copy()
    for col in ("title", "description"):
        out[col] = (
            out[col]
            .astype(str)
            .map(lambda s: _PHONE.sub("<phone>", _EMAIL.sub("<email>", s))[:500])
        )
    return out


@contextlib.contextmanager
def _pickle_model_by_value() -> Iterator[None]:
    """Pickle ``ticket_urgency.model`` by value while the model is serialised."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(model_module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(model_module)


def _confusion_figure(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cm = confusion_matrix(y, pred, labels=labels)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.2 * len(labels) + 1.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour)
    ax.set_title("confusion matrix (held-out)")
    fig.tight_layout()
    return fig


def _calibration_figure(proba: np.ndarray, y: np.ndarray, classes: list[str]) -> Any:
    import matplotlib.pyplot as plt

    conf = proba.max(axis=1)
    correct = np.asarray(classes)[proba.argmax(axis=1)] == y
    edges = np.linspace(0, 1, 11)
    mids, accs = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            mids.append(conf[sel].mean())
            accs.append(correct[sel].mean())
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot(mids, accs, "o-")
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability (held-out)")
    fig.tight_layout()
    return fig


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    pkgs = ("scikit-learn", "numpy", "scipy", "pandas", "cloudpickle")
    return [f"{p}=={version(p)}" for p in pkgs]


def train(
    settings: Settings,
    data: str = "combined",
    params: Mapping[str, Any] | None = None,
    *,
    search_grid: Sequence[Mapping[str, Any]] | None = SEARCH_GRID,
    compare_baseline: bool = True,
    register: bool = True,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train, evaluate, log to MLflow and register a new model version.

    Steps: load labelled data (:func:`load_training_data`); store it as
    ``datasets/snapshots/<digest>.csv``; hold out the newest ``settings.test_fraction`` (by
    ``created_at``, else a stratified random part); choose classifier hyperparameters on a
    validation split of the rest (:func:`search`); fit on the training part; evaluate on the
    held-out part; log params, metrics, plots, the held-out predictions, the dataset inputs and
    the model (signature + masked input example) and register it as a new version of
    ``settings.model_name``.

    Args:
        settings: Settings (storage, MLflow, model name, text cap).
        data: ``"combined"``, ``"reference"`` or a path to a labelled ticket CSV.
        params: Fixed hyperparameters (see :data:`ticket_urgency.model.DEFAULT_PARAMS`);
            ``max_chars`` defaults to ``settings.max_text_chars``.
        search_grid: Candidates for :func:`search`; None or empty skips the search.
        compare_baseline: Also fit the original design and log its held-out macro-F1.
        register: Register the logged model as a new version.
        progress: Called with a short message as each long step starts.

    Returns:
        The run id, the registered version and the held-out metrics.

    Raises:
        UserFacingError: Nothing to train on, or too little data.
    """
    import mlflow

    say = progress or (lambda _msg: None)
    td = load_training_data(settings, data)
    say(f"training on {len(td.frame)} labelled rows of {td.source}")
    fixed = {"max_chars": settings.max_text_chars, **dict(params or {})}
    resolve_params(fixed)  # fail fast on unknown names
    storage: Storage = open_storage(settings.storage, settings)
    digest, snapshot_uri = snapshot(storage, td.frame)
    train_df, test_df = split_newest(td.frame, settings.test_fraction)
    search_rows: list[dict[str, Any]] = []
    chosen = dict(fixed)
    if search_grid and len(train_df) >= 2 * MIN_ROWS:
        say(f"searching {len(search_grid)} hyperparameter candidates on a validation split")
        fit_df, val_df = split_newest(train_df, 0.2, seed=1)
        if fit_df[LABEL_COLUMN].nunique() >= 2:
            chosen, search_rows = search(fit_df, val_df, fixed, search_grid)
    final_params = resolve_params(chosen)
    min_count = int(train_df[LABEL_COLUMN].value_counts().min())
    final_params["calibration_cv"] = max(2, min(int(final_params["calibration_cv"]), min_count))
    if min_count < 2:
        raise UserFacingError(
            f"{td.source}: some label has a single training row; every label needs at least two"
        )
    say(f"fitting on {len(train_df)} rows, evaluating on {len(test_df)} held-out rows")
    pipe = model_module.build_pipeline(final_params)
    x_cols = list(FEATURE_COLUMNS)
    pipe.fit(train_df[x_cols], train_df[LABEL_COLUMN])
    metrics = evaluate(pipe, test_df)
    baseline_f1: float | None = None
    if compare_baseline:
        base = model_module.build_baseline_pipeline()
        base.fit(train_df[x_cols], train_df[LABEL_COLUMN])
        baseline_f1 = evaluate(base, test_df)["macro_f1"]
        metrics["baseline_macro_f1"] = baseline_f1
    metrics["n_train"] = float(len(train_df))
    metrics["n_test"] = float(len(test_df))

    say("logging the run and registering the model in MLflow")
    with training_run(settings, run_name="train") as run:
        run_id = run.info.run_id
        mlflow.log_params({k: v for k, v in final_params.items()})
        mlflow.log_params(
            {
                "data": td.kind,
                "data_source": td.source,
                "data_digest": digest,
                "data_rows": len(td.frame),
                "split": "time" if TIME_COLUMN in td.frame.columns else "stratified_random",
                "test_fraction": settings.test_fraction,
                "serialization": "cloudpickle",
            }
        )
        mlflow.set_tags(
            {
                "ticket_urgency.step": "train",
                "data_snapshot_uri": snapshot_uri,
                "labels": json.dumps(sorted(td.frame[LABEL_COLUMN].unique().tolist())),
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
        for i, row in enumerate(search_rows):
            mlflow.log_metric("search_val_macro_f1", row["val_macro_f1"], step=i)
        if search_rows:
            mlflow.log_dict({"candidates": search_rows}, "search/results.json")
        _log_datasets(td, train_df, test_df, digest, snapshot_uri)
        _log_evaluation(pipe, test_df)
        signature_input = train_df[x_cols].head(5).reset_index(drop=True)
        example = mask_example(signature_input.head(2))
        from mlflow.models import infer_signature

        signature = infer_signature(signature_input, pipe.predict(signature_input))
        with _pickle_model_by_value(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = mlflow.sklearn.log_model(
                pipe,
                name=MODEL_ARTIFACT,
                serialization_format="cloudpickle",
                signature=signature,
                input_example=example,
                pip_requirements=_pip_requirements(),
                registered_model_name=settings.model_name if register else None,
            )
        version = str(info.registered_model_version or "")
        if register and version:
            _tag_version(settings, version, run_id, metrics, digest, snapshot_uri)
    return TrainResult(
        run_id=run_id,
        version=version,
        model_name=settings.model_name,
        model_uri=f"models:/{settings.model_name}/{version}" if version else info.model_uri,
        metrics=metrics,
        params=final_params,
        data_source=td.source,
        data_digest=digest,
        snapshot_uri=snapshot_uri,
        n_train=len(train_df),
        n_test=len(test_df),
        labels=sorted(td.frame[LABEL_COLUMN].unique().tolist()),
        baseline_macro_f1=baseline_f1,
    )


def _log_datasets(
    td: TrainingData, train_df: pd.DataFrame, test_df: pd.DataFrame, digest: str, uri: str
) -> None:
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for context, part in (("training", train_df), ("testing", test_df)):
            ds = from_pandas(
                part.reset_index(drop=True),
                source=uri,
                targets=LABEL_COLUMN,
                name=f"{td.kind}-{digest[:12]}-{context}",
                digest=f"{digest[:12]}-{context}"[:36],
            )
            mlflow.log_input(ds, context=context)


def _log_evaluation(pipe: Pipeline, test_df: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    x = test_df[list(FEATURE_COLUMNS)]
    y = test_df[LABEL_COLUMN].astype(str).to_numpy()
    pred = np.asarray(pipe.predict(x)).astype(str)
    classes = [str(c) for c in pipe.classes_]
    proba = pipe.predict_proba(x)
    labels = sorted(set(y) | set(pred) | set(classes))
    fig = _confusion_figure(y, pred, labels)
    mlflow.log_figure(fig, "plots/confusion_matrix.png")
    plt.close(fig)
    fig = _calibration_figure(proba, y, classes)
    mlflow.log_figure(fig, "plots/calibration.png")
    plt.close(fig)
    out = pd.DataFrame({"ticket_id": test_df.get("ticket_id", pd.Series(range(len(y))))})
    out = out.reset_index(drop=True)
    out["label_urgency"] = y
    out["prediction"] = pred
    for i, c in enumerate(classes):
        out[f"proba_{c}"] = proba[:, i]
    if TIME_COLUMN in test_df.columns:
        out[TIME_COLUMN] = test_df[TIME_COLUMN].to_numpy()
    mlflow.log_text(out.to_csv(index=False), "evaluation/test_predictions.csv")
    mlflow.log_dict(
        {"labels": labels, "matrix": confusion_matrix(y, pred, labels=labels).tolist()},
        "evaluation/confusion_matrix.json",
    )


def _tag_version(
    settings: Settings,
    version: str,
    run_id: str,
    metrics: Mapping[str, float],
    digest: str,
    snapshot_uri: str,
) -> None:
    from ticket_urgency.mlflow_utils import client

    c = client(settings)
    tags = {
        "run_id": run_id,
        "macro_f1": f"{metrics['macro_f1']:.6f}",
        "data_digest": digest,
        "data_snapshot_uri": snapshot_uri,
    }
    for key, value in tags.items():
        c.set_model_version_tag(settings.model_name, version, key, value)
