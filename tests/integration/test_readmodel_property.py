"""A stateful property test against the real Firestore emulator: random sequences of writes
(creates, splits, transfers, edits, deletes, account and category deletions) through the
real services and stores, after which every month's read model equals a recomputation from
the raw transactions."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from valorize.bootstrap import Services
from valorize.domain.errors import DomainError
from valorize.domain.model import AccountType, Color, Transaction
from valorize.domain.readmodel import prune, recompute
from valorize.service import requests as c
from valorize.service.ports import Ledger, NullBus, TransactionFilter

pytestmark = pytest.mark.integration

DATES = st.dates(min_value=dt.date(2024, 11, 1), max_value=dt.date(2025, 3, 31))
AMOUNTS = st.integers(min_value=-50_000, max_value=50_000).filter(bool)


@pytest.fixture(scope="module")
def services(emulator_env: dict[str, str]) -> Services:
    from valorize import bootstrap

    # The services on the emulator; no subscribers (they would only talk to Redis).
    return bootstrap.build(bus=NullBus())


def all_transactions(ledger: Ledger, uid: str) -> list[Transaction]:
    items: list[Transaction] = []
    cursor = None
    while True:
        page = ledger.list_transactions(uid, TransactionFilter(), 200, cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


def ledger_is_consistent(services: Services, uid: str) -> None:
    """Read models, balances and counts equal a recomputation from the stored transactions."""
    everything = all_transactions(services.ledger, uid)
    truth = recompute(everything)
    col = services.firestore.collection("users").document(uid).collection("months")
    months = sorted(truth | {s.id: {} for s in col.stream()})
    stored = services.ledger.get_months(uid, months)
    for month in months:
        assert prune(stored.get(month, {})) == truth.get(month, {}), month
    # The all-time totals (budget rollover) are the same sums over every month.
    flat = recompute(replace(t, date=dt.date(2000, 1, 1)) for t in everything)
    assert prune(services.ledger.get_totals(uid)) == flat.get("2000-01", {})
    for account in services.account_store.list_accounts(uid, 200, None).items:
        mine = [t for t in everything if t.account_id == account.id]
        assert account.balance == account.opening_balance + sum(t.amount for t in mine)
        assert account.transaction_count == len(mine)


def test_read_model_always_equals_a_recomputation(services: Services) -> None:

    class ReadModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.uid = "prop-" + uuid.uuid4().hex
            self.accounts = services.accounts
            self.categories = services.categories
            self.txns = services.transactions
            self.account_ids = [
                self.accounts.create(
                    self.uid, c.CreateAccount(name=f"A{i}", type=AccountType.CHECKING, currency=cur)
                ).id
                for i, cur in enumerate(["BRL", "BRL", "USD"])
            ]
            self.category_ids = [
                self.categories.create(self.uid, c.CreateCategory(name=f"C{i}", color=Color.RED)).id
                for i in range(3)
            ]
            self.live: list[str] = []

        @rule(data=st.data(), amount=AMOUNTS, on=DATES, categorized=st.booleans())
        def create(self, data: Any, amount: int, on: dt.date, categorized: bool) -> None:
            account = data.draw(st.sampled_from(self.account_ids))
            category = data.draw(st.sampled_from(self.category_ids)) if categorized else None
            t = self.txns.create(
                self.uid,
                c.CreateTransaction(
                    account_id=account,
                    amount=amount,
                    date=on,
                    description="x",
                    category_id=category,
                ),
            )
            self.live.append(t.id)

        @rule(data=st.data(), amount=AMOUNTS, cut=st.integers(1, 99), on=DATES)
        def create_split(self, data: Any, amount: int, cut: int, on: dt.date) -> None:
            first = amount * cut // 100 or amount
            parts = [first, amount - first] if amount - first else [first - 1, 1]
            if 0 in parts:
                return
            cats = data.draw(st.lists(st.sampled_from(self.category_ids), min_size=2, max_size=2))
            t = self.txns.create(
                self.uid,
                c.CreateTransaction(
                    account_id=self.account_ids[0],
                    amount=sum(parts),
                    date=on,
                    description="s",
                    splits=[
                        c.SplitIn(category_id=k, amount=p) for k, p in zip(cats, parts, strict=True)
                    ],
                ),
            )
            self.live.append(t.id)

        @rule(amount=st.integers(1, 30_000), on=DATES)
        def transfer(self, amount: int, on: dt.date) -> None:
            out, into = self.txns.transfer(
                self.uid,
                c.CreateTransfer(
                    from_account_id=self.account_ids[0],
                    to_account_id=self.account_ids[1],
                    amount=amount,
                    date=on,
                    description="t",
                ),
            )
            self.live += [out.id, into.id]

        @precondition(lambda self: self.live)
        @rule(data=st.data(), amount=AMOUNTS, on=DATES)
        def update(self, data: Any, amount: int, on: dt.date) -> None:
            tid = data.draw(st.sampled_from(self.live))
            change = data.draw(st.sampled_from(["amount", "date", "category"]))
            body: dict[str, Any] = {
                "amount": {"amount": amount},
                "date": {"date": on},
                "category": {"category_id": data.draw(st.sampled_from(self.category_ids))},
            }[change]
            # Refused edits (a transfer flipping sides, splits no longer adding up) are fine.
            with contextlib.suppress(DomainError):
                self.txns.update(self.uid, tid, c.UpdateTransaction(**body))

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def delete(self, data: Any) -> None:
            tid = data.draw(st.sampled_from(self.live))
            with contextlib.suppress(DomainError):  # gone with its transfer counterpart
                self.txns.delete(self.uid, tid)
            self.live.remove(tid)

        @precondition(lambda self: len(self.category_ids) > 1)
        @rule(reassign=st.booleans())
        def delete_category(self, reassign: bool) -> None:
            victim = self.category_ids.pop()
            target = self.category_ids[0] if reassign else None
            self.categories.delete(self.uid, victim, target, uncategorize=not reassign)

        @precondition(lambda self: len(self.account_ids) == 3)
        @rule()
        def delete_usd_account(self) -> None:
            self.accounts.delete(self.uid, self.account_ids.pop(), confirm=True)

        @invariant()
        def read_model_matches(self) -> None:
            ledger_is_consistent(services, self.uid)

    ReadModel.TestCase.settings = settings(
        max_examples=8,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    ReadModel.TestCase().runTest()
