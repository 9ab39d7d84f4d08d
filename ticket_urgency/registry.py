"""The model registry: resolving and loading versions, the promotion gate, rollback.

Production is recorded twice and kept in agreement: the (deprecated but working) stage
``Production``, which ``models:/<name>/Production`` resolves, and the alias ``production``
(``models:/<name>@production``). The stage is the source of truth when they disagree.

Promotion (:func:`promote`) scores the challenger and the current champion on the same
evaluation set taken from the stored data (the newest 20 % of the labelled rows of
``combined_tickets.csv``) or from ``--eval PATH``, and promotes only when

* challenger macro-F1 >= champion macro-F1 - ``settings.promote_tolerance``, and
* the recall of the most urgent class (:func:`most_urgent_label`) drops by no more than
  ``settings.promote_recall_drop``.

Each decision is written as ``promotion.*`` tags on the challenger version; the version it
replaced is kept in ``promotion.previous_version``, which :func:`rollback` follows.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from sklearn.pipeline import Pipeline

from ticket_urgency.contract import LABEL_COLUMN, labelled, read_ticket_file, sort_by_time
from ticket_urgency.datasets import COMBINED_KEY, DatasetMissingError, ensure_combined
from ticket_urgency.errors import UserFacingError
from ticket_urgency.mlflow_utils import client as mlflow_client
from ticket_urgency.settings import Settings
from ticket_urgency.storage import open_storage
from ticket_urgency.training import evaluate

PRODUCTION_STAGE = "Production"
PRODUCTION_ALIAS = "production"
EVAL_FRACTION = 0.2

SEVERITY: dict[str, int] = {
    "trivial": 5,
    "low": 10,
    "minor": 20,
    "normal": 30,
    "medium": 40,
    "moderate": 40,
    "major": 60,
    "high": 70,
    "urgent": 90,
    "critical": 100,
    "blocker": 110,
    "emergency": 110,
}
"""Known urgency words and their rank (higher = more urgent)."""

_PRIORITY = re.compile(r"^(?:p|prio|priority|sev|severity|s)[\s_-]?(\d)$")
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<ref>[^/]+))$")


def severity_rank(label: str) -> int | None:
    """Return the urgency rank of a label, or None when the word is unknown.

    Known words are in :data:`SEVERITY` (case-insensitive); ``P0``..``P9`` / ``SEV1``-style
    labels rank by their number (lower number = more urgent).
    """
    key = str(label).strip().lower()
    if key in SEVERITY:
        return SEVERITY[key]
    m = _PRIORITY.match(key)
    if m:
        return 200 - int(m.group(1))
    return None


def most_urgent_label(labels: Sequence[str], counts: Mapping[str, int] | None = None) -> str:
    """Return the most urgent of ``labels``.

    Rule: the label with the highest :func:`severity_rank` among those that have one; when no
    label is a known urgency word, the minority class (fewest rows in ``counts``; ties and a
    missing ``counts`` broken by sorted order).

    Raises:
        ValueError: When ``labels`` is empty.
    """
    uniq = sorted({str(lbl) for lbl in labels})
    if not uniq:
        raise ValueError("no labels")
    ranked = [(r, lbl) for lbl in uniq if (r := severity_rank(lbl)) is not None]
    if ranked:
        return max(ranked)[1]
    counts = counts or {}
    return min(uniq, key=lambda lbl: (counts.get(lbl, 0), lbl))


@dataclass
class LoadedModel:
    """A registered model version loaded as its scikit-learn pipeline."""

    model: Pipeline
    name: str
    version: str
    run_id: str
    uri: str


def _version_key(mv: ModelVersion) -> int:
    return int(mv.version)


def _all_versions(settings: Settings, name: str) -> list[ModelVersion]:
    c = mlflow_client(settings)
    try:
        versions = list(c.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        versions = []
    return sorted(versions, key=_version_key)


def production_version(settings: Settings, name: str | None = None) -> ModelVersion | None:
    """Return the version in stage Production (else the one with alias ``production``)."""
    name = name or settings.model_name
    c = mlflow_client(settings)
    staged = [mv for mv in _all_versions(settings, name) if mv.current_stage == PRODUCTION_STAGE]
    if staged:
        return max(staged, key=_version_key)
    try:
        return c.get_model_version_by_alias(name, PRODUCTION_ALIAS)
    except MlflowException:
        return None


def resolve_version(settings: Settings, uri: str | None = None) -> ModelVersion:
    """Resolve a ``models:/`` URI to a concrete registered version.

    Accepts ``models:/<name>/<version>``, ``models:/<name>/<stage>``, ``models:/<name>/latest``
    and ``models:/<name>@<alias>``; ``uri`` defaults to ``settings.model_uri``.

    Raises:
        UserFacingError: When the URI is malformed or names nothing registered.
    """
    uri = uri or settings.model_uri
    m = _URI.match(uri)
    if not m:
        raise UserFacingError(
            f"model URI {uri!r} is not of the form models:/<name>/<version|stage> or "
            "models:/<name>@<alias>"
        )
    name, alias, ref = m.group("name"), m.group("alias"), m.group("ref")
    c = mlflow_client(settings)
    try:
        if alias:
            return c.get_model_version_by_alias(name, alias)
        assert ref is not None
        if ref.isdigit():
            return c.get_model_version(name, ref)
        versions = _all_versions(settings, name)
        if ref.lower() == "latest":
            if versions:
                return versions[-1]
        else:
            staged = [mv for mv in versions if str(mv.current_stage).lower() == ref.lower()]
            if staged:
                return staged[-1]
    except MlflowException:
        pass
    hint = "run `ticket-urgency train` and `ticket-urgency promote`"
    raise UserFacingError(f"{uri} resolves to no registered model version; {hint}")


def load_model(settings: Settings, uri: str | None = None) -> LoadedModel:
    """Load a registered version's scikit-learn pipeline (with ``predict_proba``).

    The URI is resolved to a version number first and that exact version is loaded, so a
    promotion between the two steps cannot mix versions up.

    Args:
        settings: Settings (tracking/registry URI).
        uri: A ``models:/`` URI; defaults to ``settings.model_uri``.

    Raises:
        UserFacingError: When nothing is registered under the URI.
    """
    import mlflow.sklearn

    from ticket_urgency.mlflow_utils import configure

    mv = resolve_version(settings, uri)
    configure(settings)
    pinned = f"models:/{mv.name}/{mv.version}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = mlflow.sklearn.load_model(pinned)
    return LoadedModel(model, mv.name, str(mv.version), str(mv.run_id), pinned)


def evaluation_set(settings: Settings, eval_path: str | None = None) -> tuple[pd.DataFrame, str]:
    """Return the labelled evaluation rows and their source.

    With ``eval_path`` every labelled row of that file; otherwise the newest
    :data:`EVAL_FRACTION` of the labelled rows of the stored combined set (by ``created_at``,
    else by row order).

    Raises:
        UserFacingError: When there is no stored data or no labelled row.
    """
    if eval_path:
        df, source = labelled(read_ticket_file(eval_path)), eval_path
    else:
        storage = open_storage(settings.storage, settings)
        try:
            combined, _ = ensure_combined(storage, retention_days=settings.retention_days)
        except DatasetMissingError:
            raise UserFacingError(
                f"no stored data in {settings.storage} to evaluate on: run `ticket-urgency "
                "upload` first or pass --eval PATH"
            ) from None
        rows = sort_by_time(labelled(combined))
        n = max(1, math.ceil(len(rows) * EVAL_FRACTION))
        df = rows.iloc[-n:]
        source = f"{storage.uri(COMBINED_KEY)} (newest {n} labelled rows)"
    if df.empty:
        raise UserFacingError(f"{source}: column '{LABEL_COLUMN}' has no labelled rows")
    return df.reset_index(drop=True), source


@dataclass
class Scores:
    """A model's scores on the evaluation set."""

    version: str
    macro_f1: float
    urgent_recall: float | None
    metrics: dict[str, float] = field(default_factory=dict)


def score_version(settings: Settings, version: str, df: pd.DataFrame, urgent: str) -> Scores:
    """Load ``version`` of the model and score it on ``df``."""
    loaded = load_model(settings, f"models:/{settings.model_name}/{version}")
    metrics = evaluate(loaded.model, df)
    recall = _urgent_recall(df, loaded.model, urgent)
    return Scores(str(version), metrics["macro_f1"], recall, metrics)


def _urgent_recall(df: pd.DataFrame, model: Pipeline, urgent: str) -> float | None:
    mask = df[LABEL_COLUMN].astype(str) == urgent
    if not mask.any():
        return None
    from ticket_urgency.contract import FEATURE_COLUMNS

    pred = pd.Series(model.predict(df.loc[mask, list(FEATURE_COLUMNS)])).astype(str)
    return float((pred == urgent).mean())


def gate(
    challenger: Scores, champion: Scores, tolerance: float, recall_drop: float
) -> tuple[bool, str]:
    """Apply the promotion rule to two sets of scores.

    Returns:
        ``(promote, reason)``.
    """
    reasons = []
    f1_ok = challenger.macro_f1 >= champion.macro_f1 - tolerance
    reasons.append(
        f"macro-F1 {challenger.macro_f1:.4f} vs champion {champion.macro_f1:.4f} "
        f"({'within' if f1_ok else 'worse than'} tolerance {tolerance})"
    )
    recall_ok = True
    if challenger.urgent_recall is not None and champion.urgent_recall is not None:
        drop = champion.urgent_recall - challenger.urgent_recall
        recall_ok = drop <= recall_drop + 1e-12
        reasons.append(
            f"most-urgent recall {challenger.urgent_recall:.4f} vs "
            f"{champion.urgent_recall:.4f} (drop {max(drop, 0.0):.4f}, allowed {recall_drop})"
        )
    else:
        reasons.append("most-urgent recall not comparable (class absent from evaluation set)")
    return f1_ok and recall_ok, "; ".join(reasons)


@dataclass
class PromotionDecision:
    """The outcome of :func:`promote`, printed by the CLI and recorded as tags."""

    promoted: bool
    decision: str
    reason: str
    model_name: str
    challenger_version: str
    champion_version: str | None
    production_version: str | None
    challenger_macro_f1: float | None = None
    champion_macro_f1: float | None = None
    challenger_urgent_recall: float | None = None
    champion_urgent_recall: float | None = None
    most_urgent_label: str | None = None
    eval_source: str = ""
    eval_rows: int = 0
    forced: bool = False
    timestamp: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def _newest_version(settings: Settings) -> ModelVersion:
    versions = _all_versions(settings, settings.model_name)
    if not versions:
        raise UserFacingError(
            f"no version of model {settings.model_name!r} is registered; run "
            "`ticket-urgency train` first"
        )
    return versions[-1]


def _set_production(settings: Settings, version: str) -> None:
    c = mlflow_client(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c.transition_model_version_stage(
            settings.model_name, version, PRODUCTION_STAGE, archive_existing_versions=True
        )
    c.set_registered_model_alias(settings.model_name, PRODUCTION_ALIAS, version)


def _tag(settings: Settings, version: str, tags: Mapping[str, Any]) -> None:
    c = mlflow_client(settings)
    for key, value in tags.items():
        if value is not None:
            c.set_model_version_tag(settings.model_name, version, key, str(value))


def promote(
    settings: Settings,
    version: str | int | None = None,
    eval_path: str | None = None,
    force: bool = False,
) -> PromotionDecision:
    """Run the champion/challenger gate and promote the challenger when it passes.

    Args:
        settings: Settings (registry, storage, tolerances).
        version: The challenger; default the newest registered version.
        eval_path: Evaluate on this labelled CSV instead of the stored combined set.
        force: Promote whatever the scores say (they are still computed and recorded).

    Returns:
        The decision; ``promoted`` is False for a refusal (not an error).

    Raises:
        UserFacingError: No version registered, an unknown version, or no evaluation data.
    """
    name = settings.model_name
    if version is None:
        challenger_mv = _newest_version(settings)
    else:
        challenger_mv = resolve_version(settings, f"models:/{name}/{version}")
    challenger_v = str(challenger_mv.version)
    champion_mv = production_version(settings)
    champion_v = str(champion_mv.version) if champion_mv else None
    now = datetime.now(UTC).isoformat()
    decision = PromotionDecision(
        promoted=False,
        decision="",
        reason="",
        model_name=name,
        challenger_version=challenger_v,
        champion_version=champion_v,
        production_version=champion_v,
        forced=force,
        timestamp=now,
    )
    if champion_v == challenger_v:
        decision.decision = "unchanged"
        decision.reason = f"version {challenger_v} is already in Production"
        _set_production(settings, challenger_v)  # repair a stage/alias disagreement
        return decision

    df, source = evaluation_set(settings, eval_path)
    counts = {str(k): int(v) for k, v in df[LABEL_COLUMN].astype(str).value_counts().items()}
    urgent = most_urgent_label(list(counts), counts)
    decision.eval_source, decision.eval_rows, decision.most_urgent_label = source, len(df), urgent
    challenger = score_version(settings, challenger_v, df, urgent)
    decision.challenger_macro_f1 = challenger.macro_f1
    decision.challenger_urgent_recall = challenger.urgent_recall
    if champion_v is None:
        ok, reason = True, "no model in Production yet: the first model always promotes"
    else:
        champion = score_version(settings, champion_v, df, urgent)
        decision.champion_macro_f1 = champion.macro_f1
        decision.champion_urgent_recall = champion.urgent_recall
        ok, reason = gate(
            challenger, champion, settings.promote_tolerance, settings.promote_recall_drop
        )
    if force and not ok:
        decision.decision, decision.reason = "forced", f"forced despite the gate: {reason}"
        ok = True
    else:
        decision.decision = "promoted" if ok else "refused"
        decision.reason = reason
    decision.promoted = ok
    if ok:
        _set_production(settings, challenger_v)
        decision.production_version = challenger_v
    _tag(
        settings,
        challenger_v,
        {
            "promotion.decision": decision.decision,
            "promotion.reason": decision.reason[:4000],
            "promotion.challenger_macro_f1": _fmt(decision.challenger_macro_f1),
            "promotion.champion_macro_f1": _fmt(decision.champion_macro_f1),
            "promotion.challenger_urgent_recall": _fmt(decision.challenger_urgent_recall),
            "promotion.champion_urgent_recall": _fmt(decision.champion_urgent_recall),
            "promotion.most_urgent_label": urgent,
            "promotion.previous_version": champion_v or "none",
            "promotion.eval_source": source[:4000],
            "promotion.eval_rows": len(df),
            "promotion.timestamp": now,
        },
    )
    return decision


def _fmt(value: float | None) -> str | None:
    return None if value is None else f"{value:.6f}"


@dataclass
class RollbackResult:
    """The outcome of :func:`rollback`."""

    model_name: str
    previous_version: str
    production_version: str
    timestamp: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def rollback(settings: Settings) -> RollbackResult:
    """Put the version that the current Production version replaced back into Production.

    Moves both the stage and the alias and records ``rollback.*`` tags on both versions.
    Repeated rollbacks walk further back along ``promotion.previous_version``.

    Raises:
        UserFacingError: When nothing is in Production or there is no earlier version.
    """
    name = settings.model_name
    current = production_version(settings)
    if current is None:
        raise UserFacingError(
            f"no version of model {name!r} is in Production; nothing to roll back"
        )
    previous = (current.tags or {}).get("promotion.previous_version", "none")
    if not previous or previous == "none":
        raise UserFacingError(
            f"version {current.version} of {name!r} replaced no earlier Production version; "
            "nothing to roll back to"
        )
    resolve_version(settings, f"models:/{name}/{previous}")
    now = datetime.now(UTC).isoformat()
    _set_production(settings, previous)
    _tag(
        settings,
        str(current.version),
        {"rollback.rolled_back_at": now, "rollback.replaced_by": previous},
    )
    _tag(
        settings,
        previous,
        {"rollback.restored_at": now, "rollback.restored_from": str(current.version)},
    )
    return RollbackResult(name, str(current.version), previous, now)
