"""Money as integer minor units plus an ISO-4217 currency. Never a float."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@cache
def iso4217_codes() -> frozenset[str]:
    # Imported lazily: the table costs a few ms and only validation needs it.
    from iso4217 import Currency

    # Funds, precious metals and testing codes have no minor unit ("N.A.") and are not money
    # a person keeps in a bank account.
    return frozenset(c.code for c in Currency if isinstance(c.exponent, int))


def is_currency(code: str) -> bool:
    return len(code) == 3 and code.isupper() and code in iso4217_codes()


def minor_unit_exponent(code: str) -> int:
    from iso4217 import Currency

    exponent = Currency(code).exponent
    return exponent if isinstance(exponent, int) else 0


class CurrencyMismatch(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int subclass; True cents is never meant.
        if type(self.amount) is not int:
            raise TypeError(
                f"Money.amount must be int minor units, got {type(self.amount).__name__}"
            )

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be combined")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def to_json(self) -> dict[str, int | str]:
        return {"amount": self.amount, "currency": self.currency}
