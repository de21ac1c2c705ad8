"""Playbook models: triggers, conditions, actions, governance and holdouts as typed pydantic models.

Like Prefect's automations, each trigger, condition and action is a pydantic model told apart by its ``type``
field, and every field carries a description (the YAML reference is generated from them). These models are
validated once, when a playbook file is loaded; the engine compiles them into plain-Python matchers and never
touches a pydantic object per event.

A playbook file (``playbooks.yaml``)::

    version: 1
    seed: 7                       # randomised firing and holdouts are deterministic given the seed
    global_holdout: 0.05          # customers no playbook ever acts on (the control for everything)
    budgets:
      - {name: recovery, scope: location, period: week, amount: 2000, empowerment_limit: 200}
    playbooks:
      - name: service-recovery
        trigger: {type: crisis}
        conditions: [{type: history, metric: crises, op: ge, value: 1}]
        actions:
          - {type: open_case, team: recovery, sla_hours: 24}
          - {type: compensate, amount: 50, budget: recovery}
        governance: {cooldown_hours: 72, max_per_customer: 2, period: month}
        holdout: {share: 0.1}
        measure: {outcome: retained, window: 90d}   # uplift: outcomes observed within 90 days of the decision
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keymoments.events import CRISIS_OUTCOMES, GOOD_NEWS_OUTCOMES, RESOLVED_OUTCOMES
from keymoments.money import NonNegativeMoney, PositiveMoney, to_cents  # to_cents re-exported: it lived here

__all__ = [
    "Action",
    "AbsenceTrigger",
    "BudgetPool",
    "CompensateAction",
    "Condition",
    "CrisisTrigger",
    "EventMatch",
    "EventTrigger",
    "FieldCondition",
    "GoodNewsTrigger",
    "Governance",
    "HistoryCondition",
    "Holdout",
    "JourneyCondition",
    "JourneyEndTrigger",
    "Measure",
    "MilestoneTrigger",
    "NotifyAction",
    "OpenCaseAction",
    "Playbook",
    "PlaybookFile",
    "RecognizeAction",
    "Trigger",
    "WebhookAction",
    "format_window",
    "parse_window",
    "to_cents",
]

#: Event fields a matcher or a field condition may read.
EVENT_MATCH_FIELDS = (
    "event_id",
    "customer_id",
    "journey_id",
    "touchpoint",
    "stage",
    "channel",
    "outcome",
    "rating",
    "valence",
    "value",
    "text",
    "employee_id",
    "location_id",
)

Period = Literal["day", "week", "month", "quarter", "year", "total"]
Scope = Literal["global", "customer", "employee", "location", "team", "journey"]
Op = Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "regex", "exists", "missing"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


def _check_regex(v: str | None) -> str | None:
    if v is not None:
        from keymoments.act.patterns import compile_pattern

        compile_pattern(v)  # ValueError says what is wrong
    return v


# -- event matching ---------------------------------------------------------------------------------------
class EventMatch(_Model):
    """What an event must look like. Every given criterion must hold; an empty match matches any event."""

    touchpoint: list[str] | None = Field(None, description="Touchpoint names (one or a list); any of them matches.")
    outcome: list[str] | None = Field(None, description="Outcome values (one or a list); any of them matches.")
    stage: list[str] | None = Field(None, description="Journey stages; any of them matches.")
    channel: list[str] | None = Field(None, description="Channels (app, web, phone…); any of them matches.")
    valence_below: float | None = Field(None, ge=-1, le=1, description="Event valence strictly below this.")
    valence_above: float | None = Field(None, ge=-1, le=1, description="Event valence strictly above this.")
    text_pattern: str | None = Field(
        None, description="Case-insensitive regular expression searched in the event's free text."
    )
    min_value: float | None = Field(None, description="Event value (money) at least this.")
    has_employee: bool | None = Field(None, description="true: the event names an employee_id; false: it does not.")

    _list = field_validator("touchpoint", "outcome", "stage", "channel", mode="before")(_as_list)
    _re = field_validator("text_pattern")(_check_regex)


# -- triggers ---------------------------------------------------------------------------------------------
class EventTrigger(EventMatch):
    """Fires on an event matching touchpoint / outcome / valence threshold / text pattern."""

    type: Literal["event"] = Field(description="Trigger kind: an event that matches.")


class CrisisTrigger(EventMatch):
    """Fires on a crisis: an event whose outcome is a crisis (cancelled, lost, delayed…)."""

    type: Literal["crisis"] = Field(description="Trigger kind: a crisis outcome.")
    outcome: list[str] | None = Field(
        sorted(CRISIS_OUTCOMES), description="Outcome values that count as a crisis (default: the contract's list)."
    )


class GoodNewsTrigger(EventMatch):
    """Fires on good news (approved, upgraded, delivered…): the happy moment to call the customer."""

    type: Literal["good_news"] = Field(description="Trigger kind: a good-news outcome.")
    outcome: list[str] | None = Field(
        sorted(GOOD_NEWS_OUTCOMES), description="Outcome values that count as good news (default: the contract's list)."
    )


class JourneyEndTrigger(_Model):
    """Fires at a journey's sign-off: on an ending touchpoint, or once a journey has been quiet long enough."""

    type: Literal["journey_end"] = Field(description="Trigger kind: the journey ended.")
    touchpoint: list[str] | None = Field(
        None, description="Ending touchpoints (e.g. baggage-claim); an event there ends the journey at once."
    )
    quiet_hours: float | None = Field(
        24.0,
        gt=0,
        description="Without an ending touchpoint (or as a fallback), the journey ends after this many hours without events.",
    )

    _list = field_validator("touchpoint", mode="before")(_as_list)

    @model_validator(mode="after")
    def _one_way(self) -> JourneyEndTrigger:
        if not self.touchpoint and self.quiet_hours is None:
            raise ValueError("a journey_end trigger needs 'touchpoint' or 'quiet_hours'")
        return self


class MilestoneTrigger(_Model):
    """Fires when a customer crosses an invisible milestone (the 10th trip, a year as a customer, $1,000 spent)."""

    type: Literal["milestone"] = Field(description="Trigger kind: a milestone crossed.")
    metric: Literal["journeys", "events", "tenure_days", "spend"] = Field(
        description="What is counted: distinct journeys, events, days since the first event, cumulative spend."
    )
    at: list[float] = Field(
        min_length=1, description="Thresholds; the trigger fires once per threshold, when the metric first reaches it."
    )

    @field_validator("at", mode="before")
    @classmethod
    def _sorted(cls, v: Any) -> Any:
        if isinstance(v, int | float):
            v = [v]
        return sorted(v) if isinstance(v, list) and all(isinstance(x, int | float) for x in v) else v


class AbsenceTrigger(_Model):
    """A proactive trigger: something that should have happened did not ("a crisis with no resolution in 48 h",
    "no contact for 90 days after a complaint"). Evaluated when time advances, not on an event."""

    type: Literal["absence"] = Field(description="Trigger kind: nothing happened in time.")
    after: EventMatch = Field(description="The event that starts the clock (e.g. {outcome: complaint}).")
    within_hours: float = Field(gt=0, description="How long to wait for the expected event.")
    expect: EventMatch = Field(
        EventMatch(),
        description="The event that stops the clock; default: any event of the customer (any contact at all).",
    )
    same_journey: bool = Field(
        False, description="true: only an expected event in the same journey stops the clock."
    )


Trigger = Annotated[
    EventTrigger | CrisisTrigger | GoodNewsTrigger | JourneyEndTrigger | MilestoneTrigger | AbsenceTrigger,
    Field(discriminator="type"),
]


# -- conditions -------------------------------------------------------------------------------------------
class FieldCondition(_Model):
    """A test on one field of the triggering event, or on ``attrs.<key>``."""

    type: Literal["field"] = Field(description="Condition kind: a field of the event.")
    field: str = Field(description=f"One of {list(EVENT_MATCH_FIELDS)} or 'attrs.<key>'.")
    op: Op = Field("eq", description="Comparison: eq, ne, in, not_in, gt, ge, lt, le, regex, exists, missing.")
    value: Any = Field(None, description="The value to compare with (a list for in / not_in, a pattern for regex).")

    @field_validator("field")
    @classmethod
    def _known_field(cls, v: str) -> str:
        if v not in EVENT_MATCH_FIELDS and not v.startswith("attrs."):
            from keymoments.events import did_you_mean

            raise ValueError(f"unknown field {v!r}; use one of {list(EVENT_MATCH_FIELDS)} or 'attrs.<key>'.{did_you_mean(v, EVENT_MATCH_FIELDS)}")
        return v

    @model_validator(mode="after")
    def _value_fits(self) -> FieldCondition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op == "regex":
            _check_regex(str(self.value))
        if self.op in ("gt", "ge", "lt", "le") and not isinstance(self.value, int | float):
            raise ValueError(f"op {self.op!r} needs a number value")
        return self


class HistoryCondition(_Model):
    """A test on what the customer has been through so far (before and including this event)."""

    type: Literal["history"] = Field(description="Condition kind: the customer's history.")
    metric: Literal["events", "journeys", "crises", "spend", "tenure_days", "fires", "mean_valence", "last_valence"] = Field(
        description="events, journeys, crises (count), spend (money), tenure_days, fires (of this playbook), "
        "mean_valence, last_valence (before this event)."
    )
    op: Literal["eq", "ne", "gt", "ge", "lt", "le"] = Field("ge", description="Comparison.")
    value: float = Field(description="The number to compare with.")


class JourneyCondition(_Model):
    """A test on the current journey so far: how it went (its pit, its ending, its crises)."""

    type: Literal["journey"] = Field(description="Condition kind: the current journey.")
    metric: Literal["events", "crises", "min_valence", "max_valence", "mean_valence", "last_valence"] = Field(
        description="events, crises, min_valence (the pit), max_valence (the peak), mean_valence, last_valence (the end)."
    )
    op: Literal["eq", "ne", "gt", "ge", "lt", "le"] = Field("ge", description="Comparison.")
    value: float = Field(description="The number to compare with.")


Condition = Annotated[FieldCondition | HistoryCondition | JourneyCondition, Field(discriminator="type")]


# -- actions ----------------------------------------------------------------------------------------------
class _Delivered(_Model):
    url: str | None = Field(
        None, description="Webhook URL the action is delivered to through the outbox; none: recorded only."
    )

    @field_validator("url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return v


class OpenCaseAction(_Delivered):
    """Open a case for the frontline: an owner, a reason, the moments that triggered it, an SLA, a timeline."""

    type: Literal["open_case"] = Field(description="Action kind: open a case.")
    team: str = Field("cx", description="The team whose queue the case lands in.")
    owner: Literal["employee", "team"] = Field(
        "employee", description="employee: the employee on the triggering event owns it (else the team); team: the team queue."
    )
    reason: str = Field("", description="Why the case exists; '{touchpoint}', '{outcome}' are filled from the event.")
    priority: Literal["low", "normal", "high", "urgent"] = Field("normal", description="Queue priority.")
    sla_hours: float = Field(48.0, gt=0, description="Hours to resolve the case before it breaches its SLA.")
    keep_owner: bool = Field(
        False, description="Going the distance: the first owner keeps the case until it resolves; other employees' contacts count as handoffs."
    )
    resolve_when_valence_above: float | None = Field(
        None, ge=-1, le=1, description="Resolve the case when a later event of the customer is above this valence."
    )
    resolve_on_outcome: list[str] = Field(
        sorted(RESOLVED_OUTCOMES), description="Outcome values of a later event that resolve the case."
    )
    resolve_on_touchpoint: list[str] = Field(
        default_factory=list, description="Touchpoints of a later event that resolve the case (e.g. 'Resolve ticket')."
    )

    _list = field_validator("resolve_on_outcome", "resolve_on_touchpoint", mode="before")(_as_list)


class CompensateAction(_Model):
    """Spend money (a refund, voucher, upgrade) from a budget pool, within the empowerment limit."""

    type: Literal["compensate"] = Field(description="Action kind: compensation from a budget.")
    amount: PositiveMoney = Field(
        description="The amount, in the budget's currency (e.g. 50 or 49.99): at least 0.01, at most a trillion."
    )
    budget: str = Field(description="Name of the budget pool it is spent from (declared under 'budgets').")
    kind: str = Field("voucher", description="What is given: voucher, refund, upgrade, gift…")

    @property
    def cents(self) -> int:
        return to_cents(self.amount)


class NotifyAction(_Delivered):
    """Reach the customer: a call at the happy moment, a thank-you, a follow-up."""

    type: Literal["notify"] = Field(description="Action kind: contact the customer.")
    channel: Literal["call", "email", "sms", "push", "letter", "in_person"] = Field("email", description="How.")
    template: str = Field(description="Message template name or text; '{touchpoint}', '{outcome}' are filled in.")


class RecognizeAction(_Delivered):
    """Recognise the employee behind a peak, personally (a note to their manager with the customer's words)."""

    type: Literal["recognize"] = Field(description="Action kind: employee recognition.")
    message: str = Field("Thank you", description="What to say; '{touchpoint}' and '{text}' are filled in.")


class WebhookAction(_Delivered):
    """Send the decision to any system as a signed JSON webhook."""

    type: Literal["webhook"] = Field(description="Action kind: a raw webhook.")
    url: str = Field(description="The URL the decision is POSTed to.")  # type: ignore[assignment]
    event_type: str = Field("playbook.fired", description="The 'type' field of the JSON payload.")


Action = Annotated[
    OpenCaseAction | CompensateAction | NotifyAction | RecognizeAction | WebhookAction, Field(discriminator="type")
]


# -- governance, holdout, budgets -------------------------------------------------------------------------
class Governance(_Model):
    """How often a playbook may act and on whom: probability, cooldowns and caps."""

    probability: float = Field(
        1.0, gt=0, le=1, description="Chance of firing when triggered (surprise that stays a surprise); seeded per customer and event."
    )
    per: Literal["customer", "employee", "location", "journey"] = Field(
        "customer", description="Who cooldown and caps count against (employee: recognition stays personal, not programmatic)."
    )
    cooldown_hours: float = Field(0.0, ge=0, description="Minimum hours between two firings for the same 'per' key.")
    max_per_customer: int | None = Field(
        None, ge=1, description="Most firings for one 'per' key (a customer by default) within 'period'."
    )
    period: Period = Field("total", description="Window of max_per_customer: day, week, month, quarter, year, total.")
    max_per_day: int | None = Field(None, ge=1, description="Most firings of this playbook across everyone per day.")
    priority: int = Field(0, description="Higher runs first when several playbooks fire on one event.")


class Holdout(_Model):
    """A deterministic hash-based holdout: a fixed share of customers is never acted on, to measure uplift."""

    share: float = Field(0.1, ge=0, le=0.5, description="Share of customers held out of this playbook (0 to 0.5).")
    salt: str | None = Field(None, description="Hash salt; default: the playbook's name (change it to reshuffle).")


class BudgetPool(_Model):
    """Money a team may spend: scoped per employee, location or team, refilled each period."""

    name: str = Field(min_length=1, description="Name the compensate actions refer to.")
    scope: Literal["global", "employee", "location", "team"] = Field(
        "global", description="One pool for everyone, or one per employee / location / team of the triggering event."
    )
    period: Period = Field("month", description="The pool refills at the start of each period (UTC).")
    amount: PositiveMoney = Field(
        description="Money per scope key per period, in 'currency': at least 0.01, at most a trillion."
    )
    currency: str = Field("USD", min_length=3, max_length=3, description="ISO-4217 currency code.")
    empowerment_limit: NonNegativeMoney | None = Field(
        None, description="Spends up to this amount auto-approve (Ritz-Carlton's $2,000); above it they wait for a manager."
    )

    @property
    def amount_cents(self) -> int:
        return to_cents(self.amount)

    @property
    def limit_cents(self) -> int | None:
        return None if self.empowerment_limit is None else to_cents(self.empowerment_limit)


#: The window of a playbook that names only ``outcome:`` (the shorthand of ``measure: {outcome: …, window: 90d}``).
DEFAULT_WINDOW = timedelta(days=90)
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def format_window(w: timedelta) -> str:
    """A window as the playbook file writes it: ``90d``, ``2w``, ``36h``."""
    hours = w.total_seconds() / 3600
    if hours % 168 == 0:
        return f"{int(hours // 168)}w"
    if hours % 24 == 0:
        return f"{int(hours // 24)}d"
    return f"{hours:g}h"


class Measure(_Model):
    """How a playbook's uplift is measured: on which outcome, and over which window after the decision.

    A customer counts once, in the arm of their first decision of the playbook (made live, the holdout drawn
    at that moment), and only with an outcome observed after that decision and no later than ``window``
    after it; outcomes observed before the decision, after the window or at an unknown time are left out."""

    outcome: str = Field(min_length=1, description="The outcome the uplift is measured on (e.g. retained).")
    window: timedelta = Field(
        description="How long after the customer's first decision an outcome still counts: '90d', '12w' or '48h'."
    )

    @field_validator("window", mode="before")
    @classmethod
    def _parse_window(cls, v: Any) -> Any:
        return parse_window(v)


def parse_window(v: Any) -> timedelta:
    """A window from ``'90d'``, ``'12w'``, ``'48h'`` or a timedelta; ValueError says how to write it."""
    if isinstance(v, str):
        m = _WINDOW.match(v)
        if m is None:
            raise ValueError(f"write the window as a number and a unit (h, d or w), e.g. '90d'; got {v!r}")
        v = float(m.group(1)) * _UNIT[m.group(2)]
    elif isinstance(v, int | float) and not isinstance(v, bool):
        raise ValueError(f"write the window with its unit, e.g. '{v:g}d' (days), '{v:g}w' or '{v:g}h'")
    if not isinstance(v, timedelta):
        raise ValueError(f"write the window as a number and a unit (h, d or w), e.g. '90d'; got {v!r}")
    if v <= timedelta(0):
        raise ValueError("the window must be longer than zero")
    return v


class Playbook(_Model):
    """One playbook: when to act (trigger + conditions), what to do (actions), and within which limits."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Unique name (letters, digits, - _ .).")
    description: str = Field("", description="What the playbook is for, in one or two sentences.")
    enabled: bool = Field(True, description="false: loaded and validated, never run.")
    trigger: Trigger = Field(description="What starts it; 'type' is one of event, crisis, good_news, journey_end, milestone, absence.")
    conditions: list[Condition] = Field(default_factory=list, description="Further tests that must all hold.")
    actions: list[Action] = Field(min_length=1, description="What it does: open_case, compensate, notify, recognize, webhook.")
    governance: Governance = Field(Governance(), description="Probability, cooldown and caps.")
    holdout: Holdout = Field(Holdout(share=0.0), description="The playbook's own holdout group (composes with the global one).")
    measure: Measure | None = Field(
        None, description="Its uplift's outcome and window: {outcome: retained, window: 90d}; none: not measured."
    )
    outcome: str | None = Field(
        None, description="Shorthand for measure: {outcome: <this>, window: 90d}; filled in from measure when that is given."
    )

    @model_validator(mode="before")
    @classmethod
    def _measure_and_outcome(cls, data: Any) -> Any:
        """``outcome: x`` alone means ``measure: {outcome: x, window: 90d}``; ``measure`` alone fills ``outcome``."""
        if not isinstance(data, dict):
            return data
        measure, outcome = data.get("measure"), data.get("outcome")
        named = measure.get("outcome") if isinstance(measure, dict) else getattr(measure, "outcome", None)
        if measure is None and outcome:
            return {**data, "measure": {"outcome": outcome, "window": DEFAULT_WINDOW}}
        if named and not outcome:
            return {**data, "outcome": named}
        if named and outcome and named != outcome:
            raise ValueError(f"outcome {outcome!r} and measure.outcome {named!r} differ; keep only measure")
        return data


class PlaybookFile(_Model):
    """A playbook file: budgets, the global holdout, the seed and the playbooks."""

    version: Literal[1] = Field(1, description="File format version.")
    seed: int = Field(0, description="Seed of randomised firing; the same history and seed give the same decisions.")
    global_holdout: float = Field(0.0, ge=0, le=0.5, description="Share of customers no playbook acts on.")
    budgets: list[BudgetPool] = Field(default_factory=list, description="Budget pools the playbooks spend from.")
    playbooks: list[Playbook] = Field(min_length=1, description="The playbooks, run in order of governance.priority.")

    @model_validator(mode="after")
    def _references(self) -> PlaybookFile:
        names = [p.name for p in self.playbooks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"playbook names must be unique; repeated: {dupes}")
        pools = {b.name for b in self.budgets}
        if len(pools) != len(self.budgets):
            raise ValueError("budget names must be unique")
        for p in self.playbooks:
            for a in p.actions:
                if isinstance(a, CompensateAction) and a.budget not in pools:
                    from keymoments.events import did_you_mean

                    raise ValueError(
                        f"playbook {p.name!r} spends from budget {a.budget!r}, which is not declared under 'budgets' "
                        f"(declared: {sorted(pools)}).{did_you_mean(a.budget, pools)}"
                    )
        return self

    def budget(self, name: str) -> BudgetPool:
        return next(b for b in self.budgets if b.name == name)
