"""Decimal strings from bank files to integer minor units, exactly (never through a float).

Accepted, with either decimal separator:

    1234.56   1234,56   1,234.56   1.234,56   1 234,56   1'234.56   .5   12.
    -12.00    +12.00    \u221212.00 (minus sign)    12.00-     (12.00)    -(12.00)
    R$ -1.234,56   -R$ 1.234,56   US$ 3.00   € 4,00   12.00 BRL

More fraction digits than the currency has are accepted only when the extra ones are zeros
(`-78.900` is fine; `10.005` in BRL is an error, never a rounding).
"""

from __future__ import annotations

import re

# Larger than any real statement line; keeps every amount inside Firestore's int64 and stops a
# pathological "9" * 10_000 from becoming a huge int.
MAX_MINOR_UNITS = 10**15

_CURRENCY = re.compile(r"^(?:R\$|US\$|\$|€|£|BRL|USD|EUR)\s*|\s*(?:R\$|US\$|\$|€|£|BRL|USD|EUR)$")
_SPACE_LIKE = " \t\u00a0\u2007\u2009\u202f"
_NO_SPACES = str.maketrans(dict.fromkeys(_SPACE_LIKE, None))
_MINUS = "-\u2212\u2013"  # hyphen-minus, minus sign, en dash (spreadsheets write both)
_SEPARATORS = ".,'"
_OTHER = {".": ",", ",": ".", "'": "."}


# The shape of nearly every amount in a statement: optional minus, digits, one separator and
# the decimals. Read directly; everything else goes through the general path below.
_PLAIN = re.compile(r"\s*(-?)(\d{1,15})(?:([.,])(\d{1,6}))?\s*")


class AmountError(ValueError):
    """An amount that cannot be read; the message is safe to show to the uploader."""


def parse_amount(
    text: str,
    exponent: int,
    *,
    decimal: str | None = None,
    thousands: str | None = None,
    lone_is_decimal: bool = False,
) -> int:
    """`text` as a signed integer number of minor units (10**-exponent of the currency).

    `decimal` is "." or ","; None accepts either: with two kinds of separator the last one is
    the decimal separator ("1.234,56", "1,234.56"); a separator repeated is grouping
    ("1.234.567"); a lone separator followed by exactly three digits is grouping when the
    currency has fewer than three decimals ("1,234" and "1.234" are both 1234.00); otherwise
    it is the decimal separator.

    `thousands` is the grouping character ("." "," "'" or a space), "" when grouping is not
    allowed, None to infer it. Groups must be of three digits, which catches a wrong decimal
    setting: "12.50" read with decimal "," is an error, not 1250.00.

    `lone_is_decimal`: a single separator is always the decimal one (OFX, which has no
    grouping: "-78.900" is -78.90 and "10.005" is an error)."""
    plain = _PLAIN.fullmatch(text)
    if plain is not None:
        sign, whole, sep, frac = plain.groups()
        if (
            sep is None
            or (
                sep != thousands
                and (sep == decimal or (decimal is None and (lone_is_decimal or len(frac) != 3)))
            )
        ) and (not frac or (len(frac) <= exponent)):
            scale: int = 10**exponent
            units = int(whole) * scale
            if frac:
                units += int(frac) * 10 ** (exponent - len(frac))
            if units < MAX_MINOR_UNITS:
                return -units if sign else units
    s, negative = _strip_sign_and_currency(text)
    if thousands is None or (thousands and thousands in _SPACE_LIKE):
        s = s.translate(_NO_SPACES)
        if thousands and thousands in _SPACE_LIKE:
            thousands = ""
    if not s:
        raise AmountError(f"no digits in amount {text.strip()!r}")
    for c in s:
        if not ("0" <= c <= "9" or c in _SEPARATORS):
            raise AmountError(f"{text.strip()!r} is not a number")
    if decimal is None:
        decimal, thousands = _infer(s, exponent, thousands, text, lone_is_decimal)
    elif thousands is None:
        thousands = next((c for c in s if c in _SEPARATORS and c != decimal), "")
    units = _to_units(s, exponent, decimal, thousands, text)
    if units >= MAX_MINOR_UNITS:
        raise AmountError(f"amount {text.strip()!r} is too large")
    return -units if negative else units


def _strip_sign_and_currency(text: str) -> tuple[str, bool]:
    s = text.strip()
    if len(s) > 64:
        raise AmountError(f"amount {s[:20]!r}... is too long")
    negative = False
    # Signs and currency marks in any order around the number: "-R$ 1,00", "R$ -1,00",
    # "(R$ 1,00)", "1,00-", "-(1,00)". Any of them makes it negative (they never cancel).
    for _ in range(6):
        before = s
        if s.startswith("(") and s.endswith(")"):
            negative, s = True, s[1:-1].strip()
        if s[:1] and s[0] in _MINUS:
            negative, s = True, s[1:].strip()
        elif s[:1] == "+":
            s = s[1:].strip()
        if s[-1:] and s[-1] in _MINUS:
            negative, s = True, s[:-1].strip()
        elif s[-1:] == "+":
            s = s[:-1].strip()
        s = _CURRENCY.sub("", s).strip()
        if s == before:
            break
    return s, negative


def _infer(
    s: str, exponent: int, thousands: str | None, text: str, lone_is_decimal: bool
) -> tuple[str, str]:
    """Decimal and thousands separators for one value whose decimal separator isn't given."""
    seps = [c for c in s if c in _SEPARATORS]
    kinds = set(seps)
    if thousands is not None:
        kinds.discard(thousands)
        if len(kinds) > 1 or "'" in kinds:
            raise AmountError(f"{text.strip()!r} is not a number")
        return (kinds.pop() if kinds else _OTHER.get(thousands, ".")), thousands
    if not seps:
        return ".", ""
    last = seps[-1]
    if len(kinds) == 2 and last != "'" and seps.count(last) == 1:
        return last, (kinds - {last}).pop()
    if len(kinds) > 1:
        raise AmountError(f"{text.strip()!r} is not a number")
    if seps.count(last) > 1 or last == "'":
        return _OTHER[last], last
    digits_after = len(s) - s.rindex(last) - 1
    if digits_after == 3 and exponent < 3 and s[0] != last and not lone_is_decimal:
        return _OTHER[last], last
    return last, ""


def _to_units(s: str, exponent: int, decimal: str, thousands: str, text: str) -> int:
    if thousands == decimal:
        raise AmountError("the decimal and thousands separators must differ")
    whole, _, frac = s.partition(decimal)
    if thousands and thousands in whole:
        groups = whole.split(thousands)
        if not 1 <= len(groups[0]) <= 3 or any(len(g) != 3 for g in groups[1:]):
            raise AmountError(
                f"{text.strip()!r} does not group digits by three with {thousands!r}: is "
                f"{decimal!r} the right decimal separator?"
            )
        whole = "".join(groups)
    if not (whole.isdigit() or whole == "") or not (frac.isdigit() or frac == ""):
        raise AmountError(f"{text.strip()!r} is not a number")
    if not whole and not frac:
        raise AmountError(f"no digits in amount {text.strip()!r}")
    if len(frac) > exponent:
        if frac[exponent:].strip("0"):
            raise AmountError(
                f"{text.strip()!r} has {len(frac)} decimal places; the currency has {exponent}"
            )
        frac = frac[:exponent]
    if len(whole) > 18:
        raise AmountError(f"amount {text.strip()!r} is too large")
    scale: int = 10**exponent
    return int(whole or "0") * scale + int(frac.ljust(exponent, "0") or "0")
