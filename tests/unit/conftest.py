"""Fixtures for the fast unit suite: services wired to in-memory fakes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from tests.unit.fakes import FakeHasher, FakeThrottle, FixedClock, InMemoryStore, SeqIds
from valorize.domain.model import Account, AccountType, Category, CategoryType, Color, Transaction
from valorize.service.accounts import AccountService
from valorize.service.auth import AuthService
from valorize.service.categories import CategoryService
from valorize.service.commands import (
    CreateAccount,
    CreateCategory,
    CreateTransaction,
    CreateTransfer,
    SplitIn,
)
from valorize.service.transactions import TransactionService

# User ids of the form the API issues (32 hex): cursors over users are checked against it.
USER = "ab" * 16
OTHER = "cd" * 16


@dataclass
class World:
    store: InMemoryStore
    clock: FixedClock
    ids: SeqIds
    hasher: FakeHasher
    throttle: FakeThrottle
    auth: AuthService
    accounts: AccountService
    categories: CategoryService
    transactions: TransactionService

    # --- shortcuts ----------------------------------------------------------------------------

    def account(
        self,
        user_id: str = USER,
        *,
        opening: int = 0,
        currency: str = "BRL",
        name: str = "Checking",
    ) -> Account:
        return self.accounts.create(
            user_id,
            CreateAccount(
                name=name, type=AccountType.CHECKING, currency=currency, opening_balance=opening
            ),
        )

    def category(
        self,
        user_id: str = USER,
        name: str = "Food",
        *,
        type: CategoryType = CategoryType.EXPENSE,
        parent_id: str | None = None,
    ) -> Category:
        return self.categories.create(
            user_id, CreateCategory(name=name, color=Color.RED, type=type, parent_id=parent_id)
        )

    def txn(
        self,
        account_id: str,
        amount: int,
        user_id: str = USER,
        *,
        on: date = date(2024, 1, 10),
        description: str = "Coffee",
        category_id: str | None = None,
        splits: list[tuple[str, int]] | None = None,
    ) -> Transaction:
        return self.transactions.create(
            user_id,
            CreateTransaction(
                account_id=account_id,
                amount=amount,
                date=on,
                description=description,
                category_id=category_id,
                splits=[SplitIn(category_id=c, amount=a) for c, a in splits or []],
            ),
        )

    def transfer(
        self,
        source: str,
        destination: str,
        amount: int,
        user_id: str = USER,
        *,
        on: date = date(2024, 1, 10),
    ) -> tuple[Transaction, Transaction]:
        return self.transactions.transfer(
            user_id,
            CreateTransfer(
                from_account_id=source,
                to_account_id=destination,
                amount=amount,
                date=on,
                description="Move",
            ),
        )

    def balance(self, account_id: str, user_id: str = USER) -> int:
        account = self.store.get_account(user_id, account_id)
        assert account is not None
        return account.balance


def make_world() -> World:
    clock = FixedClock()
    ids = SeqIds()
    store = InMemoryStore(clock)
    hasher = FakeHasher()
    throttle = FakeThrottle()
    return World(
        store=store,
        clock=clock,
        ids=ids,
        hasher=hasher,
        throttle=throttle,
        auth=AuthService(store, hasher, throttle, clock, ids),
        accounts=AccountService(store, clock, ids),
        categories=CategoryService(store, clock, ids),
        transactions=TransactionService(store, clock, ids),
    )


@pytest.fixture
def world() -> World:
    return make_world()
