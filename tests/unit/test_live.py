"""Domain events become the realtime events of ../shared/spec/CONTRACT.md, with API-shaped
payloads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from tests import fakes
from valorize.bootstrap import Services
from valorize.domain.events import BudgetChanged
from valorize.domain.model import Account, AccountType
from valorize.entrypoints.routes import dump
from valorize.entrypoints.schemas import AccountOut, ApiPayloads, TransactionOut
from valorize.service.live_updates import LiveUpdates
from valorize.service.messagebus import MessageBus
from valorize.service.requests import (
    CreateAccount,
    CreateTransaction,
    CreateTransfer,
    UpdateAccount,
    UpdateTransaction,
)

USER = "u1"


@dataclass
class RecordingPublisher:
    sent: list[tuple[str, str, Mapping[str, object]]] = field(default_factory=list)
    fail: bool = False

    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None:
        if self.fail:
            raise RuntimeError("boom")
        self.sent.append((user_id, event, data))
        return len(self.sent)

    def take(self, dashboard: bool = False) -> list[tuple[str, Mapping[str, object]]]:
        """What was sent since the last take (dashboard.changed only when asked for)."""
        taken = [
            (event, data)
            for _, event, data in self.sent
            if dashboard or event != "dashboard.changed"
        ]
        assert all(user == USER for user, _, _ in self.sent)
        self.sent.clear()
        return taken


@dataclass
class Live:
    """The services on fakes, their bus wired by bootstrap, publishing to `publisher`."""

    publisher: RecordingPublisher
    services: Services

    def __getattr__(self, name: str) -> Any:
        return getattr(self.services, name)


@pytest.fixture
def live() -> Live:
    publisher = RecordingPublisher()
    return Live(publisher, fakes.build(realtime=publisher))


def balance(account_id: str, amount: int) -> dict[str, object]:
    return {"account_id": account_id, "balance": {"amount": amount, "currency": "BRL"}}


def new_account(live: Live, opening: int = 0) -> str:
    cmd = CreateAccount(
        name="Checking", type=AccountType.CHECKING, currency="BRL", opening_balance=opening
    )
    account = live.accounts.create(USER, cmd)
    live.publisher.sent.clear()
    return account.id


def test_a_new_transaction_announces_itself_as_the_api_renders_it_and_the_new_balance(
    live: Live,
) -> None:
    account = new_account(live, opening=10_000)
    cmd = CreateTransaction(
        account_id=account, amount=-1_550, date=date(2025, 3, 1), description="X"
    )
    txn = live.transactions.create(USER, cmd)
    assert live.publisher.take() == [
        ("transaction.created", dump(TransactionOut.of(txn))),
        ("account.balance", balance(account, 8_450)),
    ]


def test_a_create_and_a_transfer_announce_balances_without_reading_the_accounts(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The balances come from the write (its commit's increments), not a read after it."""
    store = live.services.account_store
    reads: list[list[str]] = []
    read = store.get_accounts

    def counted(user_id: str, ids: Sequence[str]) -> Mapping[str, Account]:
        reads.append(list(ids))
        return read(user_id, ids)

    # Before the bus is wired (the first write), so its subscribers read through it too.
    monkeypatch.setattr(store, "get_accounts", counted)
    checking, savings = new_account(live, opening=1_000), new_account(live)
    reads.clear()
    on = date(2025, 3, 1)
    live.transactions.create(
        USER, CreateTransaction(account_id=checking, amount=-250, date=on, description="X")
    )
    assert ("account.balance", balance(checking, 750)) in live.publisher.take()
    cmd = CreateTransfer(
        from_account_id=checking, to_account_id=savings, amount=50, date=on, description="M"
    )
    assert reads == []
    live.transactions.transfer(USER, cmd)
    assert reads == [[checking, savings]]  # the transfer's own check of both accounts
    events = live.publisher.take()
    assert ("account.balance", balance(checking, 700)) in events
    assert ("account.balance", balance(savings, 50)) in events


def test_transfers_updates_and_deletes(live: Live) -> None:
    checking, savings = new_account(live), new_account(live)
    out, into = live.transactions.transfer(
        USER,
        CreateTransfer(
            from_account_id=checking,
            to_account_id=savings,
            amount=500,
            date=date(2025, 3, 1),
            description="Move",
        ),
    )
    assert live.publisher.take() == [
        ("transaction.created", dump(TransactionOut.of(out))),
        ("transaction.created", dump(TransactionOut.of(into))),
        ("account.balance", balance(checking, -500)),
        ("account.balance", balance(savings, 500)),
    ]

    # A description change moves no money: no balance event.
    renamed = live.transactions.update(USER, out.id, UpdateTransaction(description="Renamed"))
    events = live.publisher.take()
    assert events[0] == ("transaction.updated", dump(TransactionOut.of(renamed)))
    assert [name for name, _ in events] == ["transaction.updated"] * len(events)

    live.transactions.delete(USER, out.id)
    events = live.publisher.take()
    deleted = [data for name, data in events if name == "transaction.deleted"]
    assert {d["id"] for d in deleted} == {out.id, into.id}
    assert all(d["account_id"] in (checking, savings) for d in deleted)
    assert ("account.balance", balance(checking, 0)) in events
    assert ("account.balance", balance(savings, 0)) in events


def test_account_changes_and_deletion(live: Live) -> None:
    account = live.accounts.create(
        USER,
        CreateAccount(name="Card", type=AccountType.CHECKING, currency="BRL", opening_balance=0),
    )
    assert live.publisher.take() == [
        ("account.updated", dump(AccountOut.of(account))),
        ("account.balance", balance(account.id, 0)),
    ]
    changed = live.accounts.update(USER, account.id, UpdateAccount(opening_balance=2_000))
    assert live.publisher.take() == [
        ("account.updated", dump(AccountOut.of(changed))),
        ("account.balance", balance(account.id, 2_000)),
    ]
    live.accounts.delete(USER, account.id, confirm=True)
    assert live.publisher.take() == [("account.deleted", {"id": account.id})]


def test_a_failing_publisher_never_fails_the_write(live: Live) -> None:
    account = new_account(live)
    live.publisher.fail = True
    cmd = CreateTransaction(account_id=account, amount=100, date=date(2025, 3, 1), description="X")
    txn = live.transactions.create(USER, cmd)
    assert live.ledger.get_transaction(USER, txn.id) == txn


def test_dashboards_and_budgets_hear_of_changes(live: Live) -> None:
    account = new_account(live)
    txn = live.transactions.create(
        USER,
        CreateTransaction(account_id=account, amount=-5, date=date(2025, 3, 9), description="x"),
    )
    assert ("dashboard.changed", {"months": ["2025-03"]}) in live.publisher.take(dashboard=True)
    live.transactions.update(USER, txn.id, UpdateTransaction(date=date(2025, 1, 2)))
    assert ("dashboard.changed", {"months": ["2025-01", "2025-03"]}) in live.publisher.take(
        dashboard=True
    )
    bus = MessageBus()
    LiveUpdates(live.publisher, live.account_store.get_accounts, ApiPayloads()).subscribe(bus)
    bus.publish(BudgetChanged(USER, "2025-03"))
    assert live.publisher.take() == [("budget.changed", {"month": "2025-03"})]
