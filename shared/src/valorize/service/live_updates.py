"""Domain events → the realtime events (../shared/spec/CONTRACT.md), pushed to the owner's
Socket.IO room.

Payloads are what the HTTP API renders for the same resource (`Payloads`, given by the
composition root from the API's schemas), so a UI can update in place without refetching.
Every handler runs after the write committed; the message bus logs a failure and the request
still succeeds, and the publisher itself never raises. While a Cloud Task is handled, the
publisher (service/task_pushes.py) collects the events instead, and pushes them keyed after
the handler: there a push that fails fails the task, so none is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from valorize.domain.events import (
    AccountChanged,
    AccountDeleted,
    AccountDeleting,
    BalancesChanged,
    BudgetChanged,
    CategoryChanged,
    Event,
    TransactionCreated,
    TransactionDeleted,
    TransactionUpdated,
)
from valorize.domain.model import Account, Transaction
from valorize.domain.money import Money
from valorize.service.messagebus import MessageBus


class Publisher(Protocol):
    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None: ...


class Payloads(Protocol):
    """The API's JSON of what an event carries."""

    def transaction(self, txn: Transaction) -> dict[str, object]: ...
    def account(self, account: Account) -> dict[str, object]: ...
    def money(self, money: Money) -> dict[str, object]: ...


AccountReader = Callable[[str, Sequence[str]], Mapping[str, Account]]

HANDLED: tuple[type[Event], ...] = (
    TransactionCreated,
    TransactionUpdated,
    TransactionDeleted,
    BalancesChanged,
    AccountChanged,
    AccountDeleted,
    AccountDeleting,
    BudgetChanged,
    CategoryChanged,
)
# After these, what a dashboard shows may have changed: one `dashboard.changed` tells an open
# dashboard to refetch (its reads are cached per user version, so a refetch is cheap).
DASHBOARD_INPUTS: tuple[type[Event], ...] = (
    TransactionCreated,
    TransactionUpdated,
    TransactionDeleted,
    AccountChanged,
    AccountDeleted,
    AccountDeleting,
    CategoryChanged,
)


def _months(event: Event) -> list[str]:
    match event:
        case TransactionUpdated(transaction=new, previous=old):
            return sorted({new.date.isoformat()[:7], old.date.isoformat()[:7]})
        case TransactionCreated(transaction=txn) | TransactionDeleted(transaction=txn):
            return [txn.date.isoformat()[:7]]
    return []


class LiveUpdates:
    def __init__(self, publisher: Publisher, accounts: AccountReader, payloads: Payloads) -> None:
        self.publisher = publisher
        # Balances move by server-side increments, so only the write's answer (a create's
        # commit gives it: BalancesChanged.balances) or a read after it knows the new value.
        self.accounts = accounts
        self.payloads = payloads

    def _balance(self, account: Account) -> dict[str, object]:
        return self._money(account.id, account.balance_money)

    def _money(self, account_id: str, balance: Money) -> dict[str, object]:
        return {"account_id": account_id, "balance": self.payloads.money(balance)}

    def subscribe(self, bus: MessageBus) -> None:
        for event_type in HANDLED:
            bus.subscribe(event_type, self.handle)

    def _send(self, user_id: str, name: str, data: Mapping[str, object]) -> None:
        self.publisher.publish(user_id, name, data)

    def handle(self, event: Event) -> None:
        uid = event.user_id
        if isinstance(event, DASHBOARD_INPUTS):
            # `months` empty: anything may have changed (balances, names, colours).
            self._send(uid, "dashboard.changed", {"months": _months(event)})
        match event:
            case TransactionCreated(transaction=txn):
                self._send(uid, "transaction.created", self.payloads.transaction(txn))
            case TransactionUpdated(transaction=txn):
                self._send(uid, "transaction.updated", self.payloads.transaction(txn))
            case TransactionDeleted(transaction=txn):
                # The whole transaction as it was: a UI can also undo its totals.
                self._send(uid, "transaction.deleted", self.payloads.transaction(txn))
            case BalancesChanged(account_ids=ids):
                unknown = [a for a in ids if event.balance(a) is None]
                found = self.accounts(uid, unknown) if unknown else {}
                for account_id in ids:
                    money = event.balance(account_id)
                    if money is not None:
                        self._send(uid, "account.balance", self._money(account_id, money))
                    elif account_id in found:
                        # Missing: deleted meanwhile; account.deleted tells the UI.
                        self._send(uid, "account.balance", self._balance(found[account_id]))
            case AccountChanged(account=account):
                self._send(uid, "account.updated", self.payloads.account(account))
                # An opening-balance change moves the balance too; UIs that only follow
                # account.balance must hear of it.
                self._send(uid, "account.balance", self._balance(account))
            case AccountDeleted(account_id=account_id):
                self._send(uid, "account.deleted", {"id": account_id})
            case AccountDeleting(account_id=account_id, deleted=deleted, total=total):
                # Hidden at once; its transactions go over several task deliveries.
                progress = {"id": account_id, "deleted": deleted, "total": max(total, deleted)}
                self._send(uid, "account.deleting", progress)
            case BudgetChanged(month=month):
                self._send(uid, "budget.changed", {"month": month})
