"""The vocabulary every layer shares: the event and outcome contract, rating scales, the journey model.

The field names here are a public contract (see DESIGN.md): add fields freely, never rename these.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from keymoments.exceptions import ConfigError, InvalidEventError

__all__ = [
    "CRISIS_OUTCOMES",
    "EVENT_FIELDS",
    "GOOD_NEWS_OUTCOMES",
    "RATING_SCALES",
    "REQUIRED_FIELDS",
    "RESOLVED_OUTCOMES",
    "Event",
    "JourneyModel",
    "RatingScale",
    "Touchpoint",
    "did_you_mean",
    "rating_to_valence",
]

#: Contract fields of an event, with the DuckDB type they are stored as.
EVENT_FIELDS: dict[str, str] = {
    "event_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "journey_id": "VARCHAR",
    "ts": "TIMESTAMPTZ",
    "touchpoint": "VARCHAR",
    "stage": "VARCHAR",
    "channel": "VARCHAR",
    "outcome": "VARCHAR",
    "rating": "DOUBLE",
    "rating_scale": "VARCHAR",
    "text": "VARCHAR",
    "value": "DOUBLE",
    "employee_id": "VARCHAR",
    "location_id": "VARCHAR",
    "attrs": "JSON",
}

#: Fields an event cannot be without. ``touchpoint`` may be empty when the event has text (tagged later).
REQUIRED_FIELDS: tuple[str, ...] = ("customer_id", "ts", "touchpoint")

#: Default outcome values that mark a crisis, good news and a resolution (a journey.yaml can override them).
CRISIS_OUTCOMES: frozenset[str] = frozenset(
    {"failed", "cancelled", "canceled", "delayed", "lost", "damaged", "denied", "rejected", "complaint", "missed"}
)
GOOD_NEWS_OUTCOMES: frozenset[str] = frozenset({"approved", "upgraded", "delivered", "refunded", "won"})
RESOLVED_OUTCOMES: frozenset[str] = frozenset({"resolved", "recovered", "compensated", "refunded"})


@dataclass(frozen=True)
class RatingScale:
    """A rating scale and its linear map to valence in [-1, 1].

    ``valence = 2 * (rating - low) / (high - low) - 1``, negated when ``inverted`` (lower is better).
    """

    name: str
    low: float
    high: float
    inverted: bool = False
    description: str = ""

    def valence(self, rating: float) -> float:
        v = 2.0 * (rating - self.low) / (self.high - self.low) - 1.0
        return -v if self.inverted else v


#: Every rating scale of the contract. Ratings outside ``[low, high]`` are rejected at ingest.
RATING_SCALES: dict[str, RatingScale] = {
    s.name: s
    for s in (
        RatingScale("csat5", 1, 5, description="CSAT 1-5: 1 -> -1, 3 -> 0, 5 -> +1"),
        RatingScale("stars5", 1, 5, description="star rating 1-5: 1 -> -1, 3 -> 0, 5 -> +1"),
        RatingScale("score10", 1, 10, description="score 1-10: 1 -> -1, 5.5 -> 0, 10 -> +1"),
        RatingScale(
            "nps",
            0,
            10,
            description="likelihood to recommend 0-10: 0 -> -1, 5 -> 0, 10 -> +1 (detractors 0-6 stay at or below +0.2)",
        ),
        RatingScale("ces7", 1, 7, inverted=True, description="customer effort 1-7, lower is better: 1 -> +1, 4 -> 0, 7 -> -1"),
        RatingScale("valence", -1, 1, description="already a valence in [-1, 1]: identity"),
    )
}

#: Confidence given to a valence read from an explicit rating (a direct self-report).
RATING_CONFIDENCE = 0.9


def rating_to_valence(rating: float, scale: str) -> float:
    """Map one rating to valence; raises InvalidEventError for an unknown scale or out-of-range rating."""
    if scale not in RATING_SCALES:
        raise InvalidEventError(
            f"Unknown rating_scale {scale!r}; use one of {sorted(RATING_SCALES)}.{did_you_mean(scale, RATING_SCALES)}"
        )
    s = RATING_SCALES[scale]
    if not (s.low <= rating <= s.high):
        raise InvalidEventError(f"rating {rating} is outside the {scale} scale [{s.low:g}, {s.high:g}].")
    return s.valence(rating)


def did_you_mean(word: str, choices: Any, *, cutoff: float = 0.6) -> str:
    """Return ' Did you mean 'x'?' for the closest choice, or '' when none is close."""
    found = difflib.get_close_matches(str(word).lower(), [str(c).lower() for c in choices], n=1, cutoff=cutoff)
    if not found:
        return ""
    originals = {str(c).lower(): str(c) for c in choices}
    return f" Did you mean {originals[found[0]]!r}?"


class Event(BaseModel):
    """One interaction, as the API and the Python API accept it."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(None, description="Idempotency key; a stable content hash when absent.")
    customer_id: str = Field(..., min_length=1, description="Who the customer is.")
    journey_id: str | None = Field(None, description="Trip, booking, application or ticket; default: the customer.")
    ts: datetime = Field(..., description="When it happened; ISO-8601 or epoch; naive times are UTC.")
    touchpoint: str = Field("", description="Where it happened, e.g. 'check-in'; may be empty for text-only events.")
    stage: str | None = Field(None, description="Journey stage, e.g. 'pre-flight'.")
    channel: str | None = Field(None, description="app, web, phone, store, email, social.")
    outcome: str | None = Field(None, description="What happened: completed, failed, cancelled, resolved…")
    rating: float | None = Field(None, description="A rating on rating_scale.")
    rating_scale: str | None = Field(None, description=f"One of {sorted(RATING_SCALES)}.")
    text: str | None = Field(None, description="Free-text feedback, chat line, review, tweet.")
    value: float | None = Field(None, description="Money: spend (positive) or compensation.")
    employee_id: str | None = Field(None, description="Who served the customer.")
    location_id: str | None = Field(None, description="Where.")
    attrs: dict[str, Any] | None = Field(None, description="Anything else.")

    @field_validator("rating_scale")
    @classmethod
    def _known_scale(cls, v: str | None) -> str | None:
        if v is not None and v not in RATING_SCALES:
            raise ValueError(f"unknown rating_scale {v!r}; use one of {sorted(RATING_SCALES)}")
        return v


class Touchpoint(BaseModel):
    """One touchpoint of a journey model."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="The touchpoint's name as it appears in events.")
    stage: str | None = Field(None, description="The stage it belongs to.")
    description: str = Field("", description="One line saying what happens there; used to tag free text.")
    first_impression: bool = Field(False, description="The customer's first contact in this journey.")
    leap_of_faith: bool = Field(False, description="The customer takes a risk here (first purchase, big booking).")
    ending: bool = Field(False, description="The journey's sign-off.")
    target_valence: float | None = Field(None, ge=-1, le=1, description="Future-state valence here.")
    examples: list[str] = Field(default_factory=list, description="Labelled example texts for tagging.")


class JourneyModel(BaseModel):
    """The optional ``journey.yaml``: touchpoints in order, crises, good news and targets."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("journey", description="A name for the journey.")
    touchpoints: list[Touchpoint] = Field(default_factory=list, description="In their usual order.")
    crisis_outcomes: list[str] = Field(sorted(CRISIS_OUTCOMES), description="Outcome values that are crises.")
    good_news_outcomes: list[str] = Field(sorted(GOOD_NEWS_OUTCOMES), description="Outcome values that are good news.")
    resolved_outcomes: list[str] = Field(sorted(RESOLVED_OUTCOMES), description="Outcome values that resolve a crisis.")
    default_target_valence: float = Field(0.5, ge=-1, le=1, description="Target where a touchpoint names none.")

    @property
    def order(self) -> list[str]:
        return [t.name for t in self.touchpoints]

    def touchpoint(self, name: str) -> Touchpoint | None:
        return next((t for t in self.touchpoints if t.name == name), None)

    def target(self, name: str) -> float:
        tp = self.touchpoint(name)
        return tp.target_valence if tp is not None and tp.target_valence is not None else self.default_target_valence

    @classmethod
    def from_yaml(cls, path: str | Path) -> JourneyModel:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"Journey model {str(path)!r} does not exist.") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: {loc}: {first['msg']}") from None

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.model_dump(exclude_defaults=False), sort_keys=False), encoding="utf-8")
