"""Alerts: when a change to the ledger is worth a notification, and what it says. Pure.

- **low balance**: an account with a `low_balance_threshold` whose balance goes from at or
  above it to below it. At most one per account per day (the id carries the date), however
  often the balance dips that day.
- **large transaction**: a new transaction whose magnitude is at least the user's
  `large_transaction_threshold`, in the user's preferred currency (no conversion: other
  currencies never match). Transfers between the user's own accounts are not spending and
  never count. One per transaction.
- **envelope overspent**: an expense in a category with an envelope leaves the envelope's
  `available` for the transaction's month below zero. One per envelope per month.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from valorize.domain.model import Account, Transaction
from valorize.domain.money import minor_unit_exponent
from valorize.domain.notifications import NotificationKind, NotificationRequest, notification_id


@dataclass(frozen=True)
class AlertProfile:
    """What a user has asked to be alerted about: enough to decide, without reading
    Firestore, that a change cannot fire anything (the common case)."""

    # The user's preferred currency (large-transaction threshold and envelopes are in it);
    # None when the user does not exist.
    currency: str | None = None
    large_transaction_threshold: int | None = None
    # Account id -> its low-balance threshold (accounts without one are absent).
    low_balance: Mapping[str, int] = field(default_factory=dict)
    # Categories with an envelope (an envelope's id is its category's id).
    budgeted: frozenset[str] = frozenset()

    @property
    def watches_nothing(self) -> bool:
        nothing_set = (
            self.large_transaction_threshold is None and not self.low_balance and not self.budgeted
        )
        return self.currency is None or nothing_set

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "large_transaction_threshold": self.large_transaction_threshold,
            "low_balance": dict(self.low_balance),
            "budgeted": sorted(self.budgeted),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AlertProfile:
        return cls(
            currency=d.get("currency"),
            large_transaction_threshold=d.get("large_transaction_threshold"),
            low_balance={str(k): int(v) for k, v in (d.get("low_balance") or {}).items()},
            budgeted=frozenset(d.get("budgeted") or ()),
        )


def format_money(amount: int, currency: str) -> str:
    """`BRL -1,234.56`: plain and unambiguous in any locale."""
    exponent = minor_unit_exponent(currency)
    return f"{currency} {amount / 10**exponent:,.{exponent}f}"


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


# --- low balance ------------------------------------------------------------------------------


def crossed_below(threshold: int, balance: int, delta: int | None) -> bool:
    """Did a change of `delta` bring the balance from at/above `threshold` to below it?

    `delta` None: the writer did not say how much the balance moved, so being below after a
    change counts (the once-a-day id keeps that from repeating)."""
    if balance >= threshold:
        return False
    return delta is None or balance - delta >= threshold


def low_balance(user_id: str, account: Account, threshold: int, today: date) -> NotificationRequest:
    balance = format_money(account.balance, account.currency)
    limit = format_money(threshold, account.currency)
    return NotificationRequest(
        user_id=user_id,
        id=notification_id("lowbal", account.id, today.isoformat()),
        kind=NotificationKind.LOW_BALANCE,
        title=f"Low balance: {account.name}",
        body=f"{account.name} is at {balance}, below your alert of {limit}.",
        data={
            "account_id": account.id,
            "balance": _money(account.balance, account.currency),
            "threshold": _money(threshold, account.currency),
            "date": today.isoformat(),
        },
    )


# --- large transaction ------------------------------------------------------------------------


def is_large(txn: Transaction, threshold: int | None, currency: str | None) -> bool:
    return (
        threshold is not None
        and currency == txn.currency
        and not txn.is_transfer
        and abs(txn.amount) >= threshold
    )


def large_transaction(user_id: str, txn: Transaction, threshold: int) -> NotificationRequest:
    amount = format_money(txn.amount, txn.currency)
    return NotificationRequest(
        user_id=user_id,
        id=notification_id("large", txn.id),
        kind=NotificationKind.LARGE_TRANSACTION,
        title=f"Large transaction: {amount}",
        body=(
            f"{txn.description} ({amount} on {txn.date.isoformat()}) is at or above your "
            f"alert of {format_money(threshold, txn.currency)}."
        ),
        data={
            "transaction_id": txn.id,
            "account_id": txn.account_id,
            "amount": _money(txn.amount, txn.currency),
            "date": txn.date.isoformat(),
            "description": txn.description,
            "threshold": _money(threshold, txn.currency),
        },
    )


# --- envelopes --------------------------------------------------------------------------------


def spent_categories(txn: Transaction) -> set[str]:
    """The categories this transaction spends in (its negative parts), as budgets count it."""
    if txn.is_transfer:
        return set()
    parts: Iterable[tuple[str | None, int]] = (
        [(s.category_id, s.amount) for s in txn.splits]
        if txn.splits
        else [(txn.category_id, txn.amount)]
    )
    return {category for category, amount in parts if category and amount < 0}


def spending_changed(old: Transaction, new: Transaction) -> bool:
    """Whether an update can have changed what an envelope has spent."""
    return (old.amount, old.date, old.category_id, old.splits, old.currency) != (
        new.amount,
        new.date,
        new.category_id,
        new.splits,
        new.currency,
    )


def overspent_candidates(txn: Transaction, profile: AlertProfile) -> list[str]:
    """Envelopes (= category ids) this transaction spends from, in the budgets' currency."""
    if txn.currency != profile.currency:
        return []
    return sorted(spent_categories(txn) & profile.budgeted)


def envelope_overspent(
    user_id: str, budget_id: str, name: str, month: str, available: int, currency: str
) -> NotificationRequest:
    short = format_money(-available, currency)
    return NotificationRequest(
        user_id=user_id,
        id=notification_id("overspent", budget_id, month),
        kind=NotificationKind.ENVELOPE_OVERSPENT,
        title=f"Envelope overspent: {name}",
        body=f"{name} is overspent by {short} in {month}.",
        data={
            "budget_id": budget_id,
            "category_id": budget_id,
            "month": month,
            "available": _money(available, currency),
        },
    )
