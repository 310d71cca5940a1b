"""One contract suite per port (test_<port>.py): every test runs against the fake
(tests/fakes) and against the Firestore adapter on the emulator, both reached through the
same composition root (`fakes.build()` / `bootstrap.build()`), so what the fakes promise the
unit tests is what Firestore does.

`services` is parametrized by backend. On "firestore" each test gets a Firestore project of
its own on the emulator (the emulator keeps projects apart), so tests share nothing, not
even the collections that span users (credentials, tokens, the scheduler's collection-group
query). The emulator is the test stack's when the session starts the stack anyway (e2e or
integration tests are collected), else one Firestore emulator started for these suites.
`-m "not integration"` runs the fake half alone. The StatementFiles suite
(test_statement_files.py) runs on the Cloud Storage emulator the same way (`storage_emulator`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pytest

from devstack.ports import free_port
from devstack.process import ManagedProcess
from devstack.services import FirestoreEmulator, StorageEmulator
from tests import fakes
from valorize import bootstrap
from valorize.bootstrap import Services
from valorize.config import Settings
from valorize.domain.model import (
    Account,
    AccountType,
    ApiToken,
    Category,
    CategoryType,
    Color,
    Transaction,
    User,
)
from valorize.domain.recurrence import Monthly, Recurrence

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _emulator(
    request: pytest.FixtureRequest, variable: str, launch: Callable[[], tuple[ManagedProcess, str]]
) -> Iterator[str]:
    """The test stack's emulator when the session starts the stack anyway (e2e or integration
    tests are collected), else the one `launch` makes (the process, its address); `variable`
    points the clients built in this process at it for the session."""
    if any("stack" in getattr(item, "fixturenames", ()) for item in request.session.items):
        env: dict[str, str] = request.getfixturevalue("emulator_env")
        yield env[variable]
        return
    emulator, address = launch()
    emulator.start()
    saved = os.environ.get(variable)
    try:
        emulator.wait_ready(90)
        os.environ[variable] = address
        yield address
    finally:
        if saved is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved
        emulator.stop()


@pytest.fixture(scope="session")
def firestore_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """FIRESTORE_EMULATOR_HOST for the clients built in this process."""

    def launch() -> tuple[ManagedProcess, str]:
        emulator = FirestoreEmulator(free_port(), tmp_path_factory.mktemp("firestore"))
        return emulator, emulator.host

    yield from _emulator(request, "FIRESTORE_EMULATOR_HOST", launch)


@pytest.fixture(scope="session")
def storage_emulator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """STORAGE_EMULATOR_HOST (google-cloud-storage reads it from the environment), its
    default bucket the statements bucket of Settings: for test_statement_files.py."""

    def launch() -> tuple[ManagedProcess, str]:
        emulator = StorageEmulator(free_port(), tmp_path_factory.mktemp("storage"))
        return emulator, emulator.url

    yield from _emulator(request, "STORAGE_EMULATOR_HOST", launch)


@pytest.fixture(params=["fake", pytest.param("firestore", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def services(backend: str, request: pytest.FixtureRequest) -> Services:
    """The ports to check, as the composition root wires them: `services.ledger`..."""
    if backend == "fake":
        return fakes.build()
    request.getfixturevalue("firestore_emulator")
    return bootstrap.build(Settings(project=f"contract-{uuid.uuid4().hex[:20]}"))


@pytest.fixture
def concurrent(backend: str) -> None:
    """For tests of racing writers: the fakes run one call at a time (no threads)."""
    if backend == "fake":
        pytest.skip("the fakes are single-threaded; races are the adapters' to survive")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Make:
    """Domain objects with ids of the issued forms, stored through the ports under test."""

    services: Services
    made: dict[str, Any] = field(default_factory=dict)

    def user(self, email: str | None = None, categories: tuple[Category, ...] = ()) -> str:
        uid = new_id()
        user = User(uid, email or f"{uid}@example.com", "Ana", "BRL", "pt-BR", NOW)
        token = ApiToken(new_id(), uid, "default", NOW)
        self.services.user_store.create_user(user, "hash", categories, token, "secret-hash")
        return uid

    def account(self, uid: str, **over: Any) -> Account:
        fields: dict[str, Any] = {
            "id": new_id(),
            "name": "Checking",
            "type": AccountType.CHECKING,
            "currency": "BRL",
            "opening_balance": 0,
            "balance": 0,
            "created_at": NOW,
            "updated_at": NOW,
            **over,
        }
        account = Account(**fields)
        self.services.account_store.add_account(uid, account)
        return account

    def category(self, uid: str, name: str = "Food", **over: Any) -> Category:
        fields: dict[str, Any] = {
            "id": new_id(),
            "name": name,
            "color": Color.RED,
            "type": CategoryType.EXPENSE,
            "created_at": NOW,
            "updated_at": NOW,
            **over,
        }
        category = Category(**fields)
        self.services.category_store.add_category(uid, category)
        return category

    def txn(
        self, account: Account, amount: int, on: date = date(2024, 1, 10), **over: Any
    ) -> Transaction:
        """A transaction (not stored)."""
        fields: dict[str, Any] = {
            "id": new_id(),
            "account_id": account.id,
            "amount": amount,
            "currency": account.currency,
            "date": on,
            "description": "Coffee",
            "created_at": NOW,
            "updated_at": NOW,
            **over,
        }
        return Transaction(**fields)

    def stored(
        self, uid: str, account: Account, amount: int, on: date = date(2024, 1, 10), **over: Any
    ) -> Transaction:
        t = self.txn(account, amount, on, **over)
        self.services.ledger.add_transactions(uid, [t])
        return t

    def recurrence(self, uid: str, account: Account, **over: Any) -> Recurrence:
        fields: dict[str, Any] = {
            "id": new_id(),
            "account_id": account.id,
            "amount": -1_000,
            "currency": account.currency,
            "description": "Gym",
            "schedule": Monthly(31),
            "start": date(2024, 1, 31),
            "created_at": NOW,
            "updated_at": NOW,
            **over,
        }
        rec = Recurrence(**fields)
        self.services.recurrence_store.add_recurrence(uid, rec)
        return rec


@pytest.fixture
def make(services: Services) -> Make:
    return Make(services)
