"""In-memory stand-ins for the service layer's ports, one module per port (tests/contracts/
runs the same suite against each and its Firestore adapter), and `build`: the composition
root on fakes, in one line.

    services = fakes.build()                       # every port a fake, FixedClock, SeqIds
    services = fakes.build(bus=RecordingBus())      # ... and any member replaced
"""

from __future__ import annotations

from typing import Any

from tests.fakes.accounts import InMemoryAccounts
from tests.fakes.automations import InMemoryAutomations
from tests.fakes.budgets import InMemoryBudgets
from tests.fakes.categories import InMemoryCategories
from tests.fakes.idempotency import InMemoryIdempotency
from tests.fakes.imports import InMemoryImports, InMemoryStatementFiles
from tests.fakes.ledger import InMemoryLedger
from tests.fakes.memory import Memory
from tests.fakes.notifications import (
    DirectProfiles,
    FakeMailer,
    FakePublisher,
    InMemoryNotificationStore,
)
from tests.fakes.rate_limits import CountingLimiter
from tests.fakes.recurrences import InMemoryRecurrences
from tests.fakes.rules import InMemoryRules
from tests.fakes.security import FakeHasher, FakeThrottle, LocalRevocations
from tests.fakes.system import FixedClock, SeqIds
from tests.fakes.tasks import FakeNotifier, RecordingQueue
from tests.fakes.users import InMemoryUsers
from valorize.adapters.cache import NoCache
from valorize.bootstrap import Services
from valorize.config import Settings


def stores(memory: Memory) -> dict[str, Any]:
    """The fake of every store over one Memory, by member name."""
    return {
        "ledger": InMemoryLedger(memory),
        "account_store": InMemoryAccounts(memory),
        "category_store": InMemoryCategories(memory),
        "budget_store": InMemoryBudgets(memory),
        "rule_store": InMemoryRules(memory),
        "recurrence_store": InMemoryRecurrences(memory),
        "user_store": InMemoryUsers(memory),
        "idempotency_store": InMemoryIdempotency(memory),
        "automation_store": InMemoryAutomations(memory),
        "import_store": InMemoryImports(memory),
    }


def build(settings: Settings | None = None, **overrides: Any) -> Services:
    """Services whose ports and capabilities are fakes (the services, the bus and its
    subscribers are the real ones, wired by bootstrap); `overrides` replace any member.
    The stores share one Memory: `services.ledger.memory`."""
    clock = overrides.get("clock") or FixedClock()
    memory = Memory(clock)
    members: dict[str, Any] = {
        **stores(memory),
        "notification_store": InMemoryNotificationStore(),
        "statement_files": InMemoryStatementFiles(),
        "clock": clock,
        "ids": SeqIds(),
        "hasher": FakeHasher(),
        "throttle": FakeThrottle(),
        "revocations": LocalRevocations(),
        "rate_limiter": CountingLimiter(),
        "task_queue": RecordingQueue(),
        "notifier": FakeNotifier(),
        "realtime": FakePublisher(),
        "mailer": FakeMailer(),
        "query_cache": NoCache(),
        **overrides,
    }
    services = Services(settings or Settings(), **members)
    if "alert_profiles" not in overrides:
        # Built from the fakes on every read (no Redis): a member of its own needs the rest.
        services.alert_profiles = DirectProfiles(services.alert_profile)
    return services
