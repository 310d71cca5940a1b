"""Amounts from bank files to integer minor units: examples and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valorize.domain.statements.amounts import MAX_MINOR_UNITS, AmountError, parse_amount

FAST = settings(max_examples=150, deadline=None, database=None)


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("1234.56", 123456),
        ("1234,56", 123456),
        ("1,234.56", 123456),
        ("1.234,56", 123456),
        ("1 234,56", 123456),
        ("1\u00a0234,56", 123456),
        ("1'234.56", 123456),
        ("1.234.567,00", 123456700),
        (".5", 50),
        ("12.", 1200),
        ("-78.90", -7890),
        ("-78,90", -7890),
        ("+12.00", 1200),
        ("\u221212.00", -1200),
        ("12.00-", -1200),
        ("(12.00)", -1200),
        ("-(12.00)", -1200),
        ("R$ -1.234,56", -123456),
        ("-R$ 1.234,56", -123456),
        ("R$1.234,56-", -123456),
        ("US$ 3.00", 300),
        ("€ 4,00", 400),
        ("12.00 BRL", 1200),
        ("  7 ", 700),
        ("0,05", 5),
        ("-0.00", 0),
        ("1,234", 123400),  # a lone separator before three digits groups thousands
        ("1.234", 123400),
        ("-78.900", -7890000),  # ... even here, without lone_is_decimal (OFX sets it)
    ],
)
def test_examples(text: str, cents: int) -> None:
    assert parse_amount(text, 2) == cents


def test_ofx_mode_reads_a_lone_separator_as_decimal() -> None:
    assert parse_amount("-78.900", 2, lone_is_decimal=True) == -7890
    with pytest.raises(AmountError, match="3 decimal places"):
        parse_amount("1,234", 2, lone_is_decimal=True)


def test_currencies_without_decimals() -> None:
    assert parse_amount("1234", 0) == 1234
    assert parse_amount("1,234", 0) == 1234
    assert parse_amount("12.00", 0) == 12


def test_three_decimal_currencies_read_a_lone_separator_as_decimal() -> None:
    assert parse_amount("1.234", 3) == 1234
    assert parse_amount("-0,5", 3) == -500


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("", {}, "no digits"),
        ("R$", {}, "no digits"),
        ("abc", {}, "not a number"),
        ("12-3", {}, "not a number"),
        ("1.2.3,4,5", {}, "not a number"),
        ("1,23,456.00", {}, "group digits by three"),
        ("10.005", {"lone_is_decimal": True}, "3 decimal places"),
        ("1.5", {"exponent": 0}, "1 decimal places"),
        ("12.50", {"decimal": ","}, "right decimal separator"),
        ("1" * 19, {}, "too large"),
        (str(MAX_MINOR_UNITS), {"exponent": 0}, "too large"),
        ("9" * 70, {}, "too long"),
        ("1.234,56", {"thousands": ""}, "not a number"),
    ],
)
def test_errors_say_what_is_wrong(text: str, kwargs: dict[str, object], message: str) -> None:
    exponent = kwargs.pop("exponent", 2)
    assert isinstance(exponent, int)
    with pytest.raises(AmountError, match=message):
        parse_amount(text, exponent, **kwargs)  # type: ignore[arg-type]


def test_explicit_separators() -> None:
    assert parse_amount("1.234,56", 2, decimal=",", thousands=".") == 123456
    assert parse_amount("1,234.56", 2, decimal=".") == 123456
    assert parse_amount("1 234,56", 2, decimal=",", thousands=" ") == 123456
    assert parse_amount("1234", 2, decimal=",", thousands=".") == 123400
    with pytest.raises(AmountError):
        parse_amount("1,5", 2, decimal=",", thousands=",")


# --- properties -----------------------------------------------------------------------------

units = st.integers(min_value=-(MAX_MINOR_UNITS - 1), max_value=MAX_MINOR_UNITS - 1)
exponents = st.sampled_from([0, 2, 3])


def render(
    value: int,
    exponent: int,
    decimal: str,
    thousands: str,
    negative_form: str,
    pad_zeros: int,
) -> str:
    whole, frac = divmod(abs(value), 10**exponent)
    digits = str(whole)
    if thousands:
        groups = []
        while len(digits) > 3:
            groups.append(digits[-3:])
            digits = digits[:-3]
        digits = thousands.join([digits, *reversed(groups)])
    body = digits
    if exponent:
        body += decimal + str(frac).rjust(exponent, "0") + "0" * pad_zeros
    if value >= 0:
        return body
    return {
        "-": f"-{body}",
        "trailing": f"{body}-",
        "parens": f"({body})",
        "minus": f"\u2212{body}",
    }[negative_form]


@FAST
@given(
    value=units,
    exponent=exponents,
    decimal=st.sampled_from([".", ","]),
    grouped=st.booleans(),
    negative_form=st.sampled_from(["-", "trailing", "parens", "minus"]),
    pad_zeros=st.integers(min_value=0, max_value=2),
)
def test_any_decimal_string_round_trips_exactly(
    value: int, exponent: int, decimal: str, grouped: bool, negative_form: str, pad_zeros: int
) -> None:
    """Told the separators, every rendering of every amount reads back to the same units."""
    thousands = ("." if decimal == "," else ",") if grouped else ""
    text = render(value, exponent, decimal, thousands, negative_form, pad_zeros)
    assert parse_amount(text, exponent, decimal=decimal, thousands=thousands) == value


@FAST
@given(value=units, decimal=st.sampled_from([".", ","]), grouped=st.booleans())
def test_inferred_separators_round_trip_with_cents(value: int, decimal: str, grouped: bool) -> None:
    """Not told anything, amounts written with exactly two decimals read back exactly."""
    thousands = ("." if decimal == "," else ",") if grouped else ""
    assert parse_amount(render(value, 2, decimal, thousands, "-", 0), 2) == value


@FAST
@given(value=units, decimal=st.sampled_from([".", ","]), pad=st.integers(0, 3))
def test_ofx_amounts_never_read_a_separator_as_grouping(value: int, decimal: str, pad: int) -> None:
    text = render(value, 2, decimal, "", "-", pad)
    assert parse_amount(text, 2, lone_is_decimal=True) == value


@FAST
@given(st.text(max_size=30))
def test_arbitrary_text_either_parses_or_raises_amount_error(text: str) -> None:
    try:
        result = parse_amount(text, 2)
    except AmountError:
        return
    assert isinstance(result, int)
    assert abs(result) < MAX_MINOR_UNITS
