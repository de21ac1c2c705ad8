"""The one money type: integer cents, with bounds that every layer shares.

Money is stored and summed as integer cents (``BIGINT``), rounded half up from whatever the caller gave
(``12.345`` -> 1235 cents; floats go through ``str`` first, so ``0.1`` is ten cents, not 0.1000000000000000055…).
Every amount that reaches the engine, the ledger or a budget pool passes through :func:`to_cents`, so the
playbook validation (pydantic, :mod:`keymoments.act.models`), the dashboard's forms, the API and the live
runner accept exactly the same amounts:

* finite numbers only: ``inf``, ``NaN``, ``True``/``False`` and text that is not a number are refused;
* at most :data:`MAX_AMOUNT` (a trillion in the budget's currency, :data:`MAX_CENTS` cents) in absolute
  value, so that the sum of up to 92,000 such amounts still fits a signed 64-bit integer (9.2e18): no pool,
  ledger sum or case total can overflow ``BIGINT``;
* where a positive amount is required (a spend, a pool's size), it must be at least one cent *before*
  rounding: ``0.005`` is refused instead of becoming a spend of nothing live (Python's ``round`` took it to 0)
  and of one cent in a back-test (half up). Amounts of a cent or more round half up to whole cents.

>>> to_cents("12.345")
1235
>>> to_cents(0.1)
10
>>> to_cents(0.005, positive=True)
Traceback (most recent call last):
...
keymoments.money.MoneyError: The amount must be at least 0.01 (one cent); got 0.005.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, WithJsonSchema

from keymoments.exceptions import ConfigError

__all__ = [
    "MAX_AMOUNT",
    "MAX_CENTS",
    "Money",
    "MoneyError",
    "NonNegativeMoney",
    "PositiveMoney",
    "format_cents",
    "parse_amount",
    "to_cents",
]

#: The largest amount (in a currency's main unit) anything may be: a trillion.
MAX_AMOUNT = Decimal(10) ** 12
#: :data:`MAX_AMOUNT` in cents (1e14); 92,233 of them sum to less than 2**63.
MAX_CENTS = int(MAX_AMOUNT * 100)
_CENT = Decimal("0.01")


class MoneyError(ConfigError):
    """An amount of money is not a finite number within bounds (a ``ValueError``, so pydantic reports it)."""


def parse_amount(amount: Any, *, what: str = "amount", positive: bool = False) -> Decimal:
    """``amount`` as a Decimal rounded half up to whole cents, checked against the bounds.

    Accepts ints, floats, Decimals and numeric strings (``"49.99"``, ``"1e3"``); raises :class:`MoneyError`
    (a ``ValueError``) with a message that says what is allowed. ``positive=True`` also refuses amounts below
    one cent (before rounding).
    """
    if isinstance(amount, bool) or not isinstance(amount, int | float | Decimal | str):
        raise MoneyError(
            f"The {what} must be a number (e.g. 50 or 49.99); got {type(amount).__name__} {amount!r}."
        )
    if isinstance(amount, float) and not math.isfinite(amount):
        raise MoneyError(f"The {what} must be a finite number; got {amount!r}.")
    try:
        d = amount if isinstance(amount, Decimal) else Decimal(str(amount).strip())
    except (InvalidOperation, ValueError):
        raise MoneyError(
            f"The {what} must be a number (e.g. 50 or 49.99); got {str(amount)[:40]!r}."
        ) from None
    if not d.is_finite():
        raise MoneyError(f"The {what} must be a finite number; got {str(amount)[:40]!r}.")
    if abs(d) > MAX_AMOUNT:
        raise MoneyError(f"The {what} may be at most {MAX_AMOUNT:,} in absolute value; got {_short(amount)}.")
    if positive and d < _CENT:
        raise MoneyError(f"The {what} must be at least 0.01 (one cent); got {_short(amount)}.")
    return d.quantize(_CENT, rounding=ROUND_HALF_UP)  # |d| <= 1e12: well within Decimal's 28 digits


def to_cents(amount: Any, *, what: str = "amount", positive: bool = False) -> int:
    """Money in integer cents, rounded half up (``12.345`` -> 1235), within ±:data:`MAX_CENTS`.

    Floats go through ``str`` first. Raises :class:`MoneyError` for non-finite, non-numeric or out-of-bounds
    amounts, and (``positive=True``) for amounts below one cent."""
    return int(parse_amount(amount, what=what, positive=positive) * 100)


def format_cents(cents: int) -> str:
    """``1235`` -> ``'12.35'``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _short(d: Any) -> str:
    s = str(d)
    return s if len(s) <= 40 else s[:40] + "…"


def _validator(positive: bool, minimum: int | None) -> Any:
    def check(v: Any, info: ValidationInfo) -> Any:
        what = (info.field_name or "amount").replace("_", " ")
        d = parse_amount(v, what=what, positive=positive)
        if minimum is not None and d < minimum:
            raise MoneyError(f"The {what} must be at least {minimum}; got {_short(v)}.")
        return v  # checked; pydantic makes the Decimal as it always did (so a file's hash does not change)

    return check


def _schema(minimum: float | None, exclusive: bool) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "number", "maximum": float(MAX_AMOUNT)}
    if minimum is not None:
        s["exclusiveMinimum" if exclusive else "minimum"] = minimum
    return s


#: An amount of money in a pydantic model: a Decimal, finite, at most MAX_AMOUNT in absolute value (its cents:
#: :func:`to_cents`).
Money = Annotated[Decimal, BeforeValidator(_validator(False, None)),
                  WithJsonSchema(_schema(None, False))]  # fmt: skip
#: A positive amount: at least one cent (``0.005`` is refused); more decimals round half up.
PositiveMoney = Annotated[Decimal, BeforeValidator(_validator(True, None)),
                          WithJsonSchema(_schema(0, True))]  # fmt: skip
#: An amount of zero or more (an empowerment limit of 0: every spend waits for a manager).
NonNegativeMoney = Annotated[Decimal, BeforeValidator(_validator(False, 0)),
                             WithJsonSchema(_schema(0, False))]  # fmt: skip
