"""Money: integer cents with bounds, the one type the playbook validation, the ledger and the forms share."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keymoments.money import MAX_AMOUNT, MAX_CENTS, MoneyError, format_cents, parse_amount, to_cents


def test_cents_rounded_half_up_from_every_kind_of_number():
    assert to_cents("12.345") == 1235
    assert to_cents(0.1 + 0.2) == 30
    assert to_cents(Decimal("49.99")) == 4999
    assert to_cents(2000) == 200_000
    assert to_cents(" 1e3 ") == 100_000
    assert to_cents(-1.005) == -101


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (float("inf"), "finite"),
        (float("-inf"), "finite"),
        (float("nan"), "finite"),
        ("Infinity", "finite"),
        ("NaN", "finite"),
        (1e308, "at most 1,000,000,000,000"),
        (1e30, "at most 1,000,000,000,000"),
        ("1e20", "at most 1,000,000,000,000"),
        (10**13, "at most 1,000,000,000,000"),
        ("ten", "must be a number"),
        ("", "must be a number"),
        (True, "must be a number"),
        (None, "must be a number"),
        ([1], "must be a number"),
    ],
)
def test_what_is_not_money_is_refused_with_a_clear_message(amount, message):
    with pytest.raises(MoneyError, match=message):
        to_cents(amount)
    assert issubclass(MoneyError, ValueError)  # pydantic reports it as a validation error


@pytest.mark.parametrize("amount", [0.005, 0.004, 0, 0.0, "0.009", -1, Decimal("-0.01")])
def test_a_positive_amount_is_at_least_one_cent(amount):
    with pytest.raises(MoneyError, match=r"at least 0\.01|must be positive"):
        to_cents(amount, positive=True)
    assert to_cents(0.01, positive=True) == 1
    assert to_cents(0.015, positive=True) == 2


def test_bounds_leave_room_for_sums_in_int64():
    assert to_cents(MAX_AMOUNT) == MAX_CENTS
    assert to_cents(-MAX_AMOUNT) == -MAX_CENTS
    assert 90_000 * MAX_CENTS < 2**63 - 1


@given(st.decimals(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT, allow_nan=False, allow_infinity=False))
def test_every_amount_within_bounds_is_exact_cents(d):
    cents = to_cents(d)
    assert abs(cents) <= MAX_CENTS
    assert abs(Decimal(cents) / 100 - d) <= Decimal("0.005")
    assert parse_amount(d) == Decimal(cents) / 100


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_is_cents_or_a_money_error(x):
    try:
        cents = to_cents(x)
    except MoneyError:
        return
    assert isinstance(cents, int) and abs(cents) <= MAX_CENTS


def test_format_cents():
    assert format_cents(1235) == "12.35"
    assert format_cents(-5) == "-0.05"
    assert format_cents(0) == "0.00"
