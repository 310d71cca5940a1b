"""Money: integer minor units plus a currency, never a float."""

from __future__ import annotations

from typing import Any

import pytest

from valorize.domain.money import CurrencyMismatch, Money, is_currency, minor_unit_exponent


@pytest.mark.parametrize("amount", [1.0, 0.5, True, False, "100", None])
def test_money_refuses_anything_but_int(amount: Any) -> None:
    with pytest.raises(TypeError):
        Money(amount, "BRL")


def test_money_accepts_ints_of_any_sign() -> None:
    assert Money(-150, "BRL").amount == -150
    assert Money(0, "USD") == Money.zero("USD")
    assert Money(2**53, "EUR").amount == 2**53


def test_arithmetic_in_one_currency() -> None:
    a, b = Money(1000, "BRL"), Money(-250, "BRL")
    assert a + b == Money(750, "BRL")
    assert a - b == Money(1250, "BRL")
    assert -a == Money(-1000, "BRL")
    assert (a + b).to_json() == {"amount": 750, "currency": "BRL"}


@pytest.mark.parametrize("op", ["add", "sub"])
def test_arithmetic_refuses_mixed_currencies(op: str) -> None:
    a, b = Money(100, "BRL"), Money(100, "USD")
    with pytest.raises(CurrencyMismatch, match="BRL and USD"):
        _ = a + b if op == "add" else a - b


def test_currency_mismatch_is_a_value_error() -> None:
    assert issubclass(CurrencyMismatch, ValueError)


@pytest.mark.parametrize("code", ["BRL", "USD", "EUR", "JPY", "GBP", "CHF"])
def test_real_currencies(code: str) -> None:
    assert is_currency(code)


@pytest.mark.parametrize("code", ["XXX", "XTS", "XAU", "brl", "Brl", "", "BR", "BRLL", "ZZZ"])
def test_not_currencies(code: str) -> None:
    assert not is_currency(code)


def test_minor_unit_exponent() -> None:
    assert minor_unit_exponent("BRL") == 2
    assert minor_unit_exponent("JPY") == 0
    assert minor_unit_exponent("XAU") == 0
