"""A stateful property test against the real Firestore emulator: random sequences of writes
(creates, splits, transfers, edits, deletes, account and category deletions) through the
real services and store, after which every month's read model equals a recomputation from
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

from valorize.adapters.firestore_store import FirestoreStore
from valorize.adapters.system import SystemClock, Uuid7Ids
from valorize.domain.errors import DomainError
from valorize.domain.model import AccountType, Color, Transaction
from valorize.domain.readmodel import prune, recompute
from valorize.service import commands as c
from valorize.service.accounts import AccountService
from valorize.service.categories import CategoryService
from valorize.service.ports import TransactionFilter
from valorize.service.transactions import TransactionService

pytestmark = pytest.mark.integration

DATES = st.dates(min_value=dt.date(2024, 11, 1), max_value=dt.date(2025, 3, 31))
AMOUNTS = st.integers(min_value=-50_000, max_value=50_000).filter(bool)


@pytest.fixture(scope="module")
def store(emulator_env: dict[str, str]) -> FirestoreStore:
    from valorize import bootstrap

    return bootstrap.store()


def all_transactions(store: FirestoreStore, uid: str) -> list[Transaction]:
    items: list[Transaction] = []
    cursor = None
    while True:
        page = store.list_transactions(uid, TransactionFilter(), 200, cursor)
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


def test_read_model_always_equals_a_recomputation(store: FirestoreStore) -> None:
    clock, ids = SystemClock(), Uuid7Ids()

    class ReadModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.uid = "prop-" + uuid.uuid4().hex
            self.accounts = AccountService(store, clock, ids)
            self.categories = CategoryService(store, clock, ids)
            self.txns = TransactionService(store, clock, ids)
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
            everything = all_transactions(store, self.uid)
            truth = recompute(everything)
            # The all-time totals (budget rollover) are the same sums over every month.
            flat = recompute(replace(t, date=dt.date(2000, 1, 1)) for t in everything)
            assert prune(store.get_totals(self.uid)) == flat.get("2000-01", {})
            months = sorted(truth | {m: {} for m in self._stored_months()})
            stored = store.get_months(self.uid, months)
            for month in months:
                assert prune(stored.get(month, {})) == truth.get(month, {}), month

        def _stored_months(self) -> list[str]:
            col = store._col(self.uid, "months")
            return [s.id for s in col.stream()]

    ReadModel.TestCase.settings = settings(
        max_examples=8,
        stateful_step_count=12,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    ReadModel.TestCase().runTest()
