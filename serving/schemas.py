"""Request and response models of the serving API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

_SURROGATE = re.compile("[\ud800-\udfff]")


class TicketIn(BaseModel):
    """One support ticket. Unknown extra fields are ignored; long text is never rejected."""

    model_config = ConfigDict(
        extra="ignore",
        # documents the _some_text rule, so that clients (and schema fuzzers) know it
        json_schema_extra={
            "anyOf": [
                {"required": ["title"], "properties": {"title": {"pattern": r"\S"}}},
                {"required": ["description"], "properties": {"description": {"pattern": r"\S"}}},
            ]
        },
    )

    title: str = Field(default="", description="Ticket title (may be empty if description is not).")
    description: str = Field(
        default="", validate_default=True, description="Ticket body; may be empty or very long."
    )
    source: str = Field(description="Channel, e.g. email, web, chat, phone, api.")
    customer_tier: str = Field(description="Customer tier, e.g. Free, Bronze, Silver, Gold.")
    ticket_id: str | None = Field(default=None, description="Your id; derived when absent.")

    @field_validator("title", "description", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("ticket_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("title", "description", "source", "customer_tier", "ticket_id")
    @classmethod
    def _valid_unicode(cls, value: str | None) -> str | None:
        # JSON can escape a lone UTF-16 surrogate ("\ud800"), which is not a character: it
        # cannot be encoded as UTF-8 (hashing, the prediction log). It becomes U+FFFD, as in
        # a decoder's "replace" mode; the ticket is still scored.
        if value is None or value.isascii():
            return value
        return _SURROGATE.sub("\ufffd", value)

    @field_validator("description")
    @classmethod
    def _some_text(cls, value: str, info: ValidationInfo) -> str:
        title = info.data.get("title")
        if not value.strip() and (title is None or not title.strip()):
            raise ValueError("title and description are both empty; give at least one of them")
        return value


class BatchIn(BaseModel):
    """A batch of tickets (at most the configured batch limit)."""

    tickets: list[TicketIn] = Field(description="The tickets, in the order of the answers.")


class PredictionOut(BaseModel):
    """The urgency of one ticket."""

    prediction: str = Field(description="Predicted urgency label.")
    confidence: float = Field(description="Probability of the predicted label.")
    probabilities: dict[str, float] = Field(description="Probability of every label.")
    needs_review: bool = Field(description="True when confidence is below the review threshold.")
    model_version: int | str = Field(description="Registry version that answered.")
    ticket_id: str | None = Field(default=None, description="Echo of the ticket id, if given.")


class BatchOut(BaseModel):
    """Predictions for a batch, in input order."""

    predictions: list[PredictionOut]
    model_version: int | str


class InvocationsOut(BaseModel):
    """MLflow scoring-server answer: one predicted label per input row."""

    predictions: list[str]


class ReloadOut(BaseModel):
    """Outcome of a reload request."""

    status: str = Field(description="reloaded, unchanged or failed.")
    previous_version: int | str | None
    model_version: int | str | None
    model_loaded: bool
    reason: str | None = None


class HealthOut(BaseModel):
    """Liveness."""

    status: str
    model_loaded: bool
    model_version: int | str | None


class ModelInfoOut(BaseModel):
    """The served model."""

    name: str
    version: int | str
    run_id: str | None
    uri: str
    version_uri: str
    source: str | None
    loaded_at: datetime
    load_seconds: float
    classes: list[str]
    fast_path: bool
    metrics: dict[str, float]
