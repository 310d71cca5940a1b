"""Every fake and every Firestore adapter has its port's methods with the port's parameters
(what zope's verifyClass checks for pypi/warehouse's interfaces); the suites beside this one
check what they do."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from valorize.bootstrap import Services
from valorize.service import ports
from valorize.service.ports.imports import ImportRepository, StatementFiles

PORTS: dict[str, type[Any]] = {
    "ledger": ports.Ledger,
    "account_store": ports.AccountStore,
    "category_store": ports.CategoryStore,
    "budget_store": ports.BudgetStore,
    "rule_store": ports.RuleStore,
    "recurrence_store": ports.RecurrenceStore,
    "user_store": ports.UserStore,
    "idempotency_store": ports.IdempotencyStore,
    "notification_store": ports.NotificationStore,
    "automation_store": ports.AutomationStore,
    "import_store": ImportRepository,
}


def methods(port: type[Any]) -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(fn).parameters)
        for name, fn in vars(port).items()
        if callable(fn) and not name.startswith("_")
    }


@pytest.mark.parametrize("member", sorted(PORTS))
def test_the_implementation_has_the_ports_methods(services: Services, member: str) -> None:
    implementation = type(getattr(services, member))
    for name, parameters in methods(PORTS[member]).items():
        found = getattr(implementation, name, None)
        assert callable(found), f"{implementation.__name__} lacks {name}"
        assert list(inspect.signature(found).parameters) == parameters, name


@pytest.mark.parametrize(
    ("port", "fake"),
    [
        (ports.PasswordHasher, "security.FakeHasher"),
        (ports.LoginThrottle, "security.FakeThrottle"),
        (ports.RevocationFeed, "security.LocalRevocations"),
        (ports.RateLimiter, "rate_limits.CountingLimiter"),
        (ports.Clock, "system.FixedClock"),
        (ports.Ids, "system.SeqIds"),
        (ports.EventBus, "system.RecordingBus"),
        (ports.TaskQueue, "tasks.RecordingQueue"),
        (ports.Notifier, "tasks.FakeNotifier"),
        (ports.Mailer, "notifications.FakeMailer"),
        (ports.LivePublisher, "notifications.FakePublisher"),
        (ports.AlertProfiles, "notifications.DirectProfiles"),
        (StatementFiles, "imports.InMemoryStatementFiles"),
    ],
)
def test_the_other_fakes_have_their_ports_methods(port: type[Any], fake: str) -> None:
    import importlib

    module, name = fake.split(".")
    implementation = getattr(importlib.import_module(f"tests.fakes.{module}"), name)
    for method, parameters in methods(port).items():
        found = list(inspect.signature(getattr(implementation, method)).parameters)
        assert found[: len(parameters)] == parameters, method


def test_seq_ids_are_ids_of_the_issued_form() -> None:
    from tests.fakes.system import SeqIds
    from valorize.domain import ids

    seq = SeqIds()
    made = [seq.new_id() for _ in range(20)]
    assert made == sorted(made) and all(ids.ENTITY.matches(i) for i in made)
