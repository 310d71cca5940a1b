"""Fixtures for the fast unit suite: the real services, built by bootstrap on fakes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from tests import fakes
from tests.fakes.memory import Memory
from tests.fakes.tasks import RecordingQueue
from valorize.bootstrap import Services
from valorize.domain.model import Account, AccountType, Category, CategoryType, Color, Transaction
from valorize.service.accounts import DELETE_PATH
from valorize.service.requests import (
    CreateAccount,
    CreateCategory,
    CreateTransaction,
    CreateTransfer,
    SplitIn,
)
from valorize.service.requests.recurrences import CreateRecurrence

# User ids of the form the API issues (32 hex): cursors over users are checked against it.
USER = "ab" * 16
OTHER = "cd" * 16


def monthly_rent(account_id: str, **over: Any) -> CreateRecurrence:
    """A rent paid on the 31st (the last day of shorter months), from January 2024: the
    recurrence the automation tests run; `over` changes its fields."""
    body = {
        "account_id": account_id,
        "amount": -150000,
        "description": "Rent",
        "schedule": {"frequency": "monthly", "day": 31},
        "start": "2024-01-31",
        **over,
    }
    # Through JSON, as the API validates it (its strict models take dates as text there).
    return CreateRecurrence.model_validate_json(json.dumps(body))


@dataclass
class World:
    """The services on fakes (`fakes.build`), and shortcuts. Any member of the Services is
    an attribute: world.transactions (the service), world.ledger (the fake port), world.clock."""

    services: Services

    def __getattr__(self, name: str) -> Any:
        return getattr(self.services, name)

    @property
    def memory(self) -> Memory:
        """What the fake stores hold (they share it)."""
        memory: Memory = self.services.ledger.memory  # type: ignore[attr-defined]
        return memory

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

    def run_deletions(self) -> int:
        """Deliver the queued account-deletion tasks, and those they enqueue, until none are
        left, as Cloud Tasks would; how many were delivered."""
        queue: RecordingQueue = self.services.task_queue  # type: ignore[assignment]
        delivered = 0
        while tasks := queue.take(DELETE_PATH):
            for task in tasks:
                self.accounts.run_deletion(**task.payload)
                delivered += 1
        return delivered

    def delete_account(self, account_id: str, user_id: str = USER) -> None:
        """DELETE ?confirm=true, and its tasks run to the end."""
        self.accounts.delete(user_id, account_id, confirm=True)
        self.run_deletions()

    def balance(self, account_id: str, user_id: str = USER) -> int:
        account = self.account_store.get_account(user_id, account_id)
        assert account is not None
        return account.balance


def make_world(**overrides: Any) -> World:
    return World(fakes.build(**overrides))


@pytest.fixture
def world() -> World:
    return make_world()
