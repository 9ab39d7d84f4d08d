"""Outbound calls of the orchestrator: ask serving instances to reload, post notifications.

Both are best-effort: a failure is returned as an outcome (and the caller records it), never
raised, because an unreachable API or webhook must not fail a training or a promotion.
Only the standard library is used, so this module adds no dependency.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import Any

USER_AGENT = "ticket-urgency-orchestrator"


@dataclass
class CallOutcome:
    """The result of one outbound HTTP call."""

    url: str
    ok: bool
    status: int | None = None
    body: Any = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return asdict(self)


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text[:500]


def post_json(
    url: str,
    payload: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> CallOutcome:
    """POST ``payload`` as JSON to ``url`` and return what happened (never raises).

    Args:
        url: Target URL.
        payload: JSON-serialisable body.
        headers: Extra request headers.
        timeout: Seconds to wait for the whole call.

    Returns:
        The outcome: ``ok`` is True for a 2xx reply.
    """
    data = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("User-Agent", USER_AGENT)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = _decode(response.read())
            status = int(response.status)
            return CallOutcome(url, 200 <= status < 300, status, body, None, _since(start))
    except urllib.error.HTTPError as exc:
        body = _decode(exc.read() or b"")
        return CallOutcome(url, False, exc.code, body, f"HTTP {exc.code}", _since(start))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return CallOutcome(url, False, None, None, f"unreachable: {reason}", _since(start))


def _since(start: float) -> float:
    return round(time.monotonic() - start, 3)


def reload_serving(
    base_urls: list[str], token: str | None, *, timeout: float = 60.0
) -> list[CallOutcome]:
    """Ask each serving instance to reload its model (``POST <url>/reload-model``).

    Args:
        base_urls: Serving base URLs, e.g. ``http://localhost:8000``.
        token: The admin bearer token; without one the API answers 403 (recorded as such).
        timeout: Seconds per call (a reload loads and smoke-tests the model first).

    Returns:
        One outcome per URL. A reply ``{"status": ...}`` other than a failure marker counts as
        success only when the HTTP status is 2xx.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    outcomes = []
    for base in base_urls:
        url = base.rstrip("/") + "/reload-model"
        outcome = post_json(url, {}, headers=headers, timeout=timeout)
        if outcome.ok and isinstance(outcome.body, dict):
            status = str(outcome.body.get("status", "")).lower()
            if status in {"failed", "error"}:
                outcome.ok = False
                outcome.error = str(
                    outcome.body.get("detail") or outcome.body.get("error") or status
                )
        outcomes.append(outcome)
    return outcomes


def notify(
    url: str | None, event: str, payload: dict[str, Any], *, timeout: float = 10.0
) -> CallOutcome | None:
    """Post ``{"event": event, "source": ..., **payload}`` to the webhook, if one is configured.

    Returns:
        The outcome, or None when ``url`` is empty.
    """
    if not url:
        return None
    body = {"event": event, "source": USER_AGENT, **payload}
    return post_json(url, body, timeout=timeout)
