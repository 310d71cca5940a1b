"""Domain events: facts the write side announces after a change is committed. Handlers
(realtime push, cache invalidation, alerts) subscribe to them in the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from valorize.domain.model import Account, Transaction
from valorize.domain.money import Money


@dataclass(frozen=True)
class Event:
    user_id: str


@dataclass(frozen=True)
class TransactionCreated(Event):
    transaction: Transaction


@dataclass(frozen=True)
class TransactionUpdated(Event):
    transaction: Transaction
    previous: Transaction


@dataclass(frozen=True)
class TransactionDeleted(Event):
    transaction: Transaction


@dataclass(frozen=True)
class BalancesChanged(Event):
    """The balances of these accounts moved; handlers read the new values unless the
    writer gives them (`balances`)."""

    account_ids: tuple[str, ...]
    # (account id, how much its balance moved) when the writer knows; lets a handler tell
    # where the balance was before the change (the low-balance alert needs a crossing).
    deltas: tuple[tuple[str, int], ...] = ()
    # (account id, its balance just after the write) when the write answered it (a create's
    # commit does): a handler that only needs the new value reads nothing.
    balances: tuple[tuple[str, Money], ...] = ()

    def delta(self, account_id: str) -> int | None:
        found = [amount for account, amount in self.deltas if account == account_id]
        return sum(found) if found else None

    def balance(self, account_id: str) -> Money | None:
        return next((money for account, money in self.balances if account == account_id), None)


@dataclass(frozen=True)
class AccountChanged(Event):
    account: Account


@dataclass(frozen=True)
class AccountDeleted(Event):
    account_id: str


@dataclass(frozen=True)
class AccountDeleting(Event):
    """The account is hidden and its transactions are going, a page at a time (published
    when it is hidden and after each task delivery): lists, balances and dashboards moved."""

    account_id: str
    deleted: int
    total: int


@dataclass(frozen=True)
class CategoryChanged(Event):
    """Created, renamed, recoloured or deleted (its transactions may have moved)."""

    category_id: str


@dataclass(frozen=True)
class BudgetChanged(Event):
    month: str | None = None
