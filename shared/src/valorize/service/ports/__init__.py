"""What the service layer needs from the outside world: one narrow port per aggregate or
capability, one module each. Adapters implement them (the Firestore ones in
adapters/firestore/, one module per port); unit tests use the fakes in tests/fakes/, and
tests/contracts/ runs the same suite against both."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from valorize.service.ports.accounts import AccountStore
    from valorize.service.ports.automations import AutomationStore
    from valorize.service.ports.budgets import BudgetStore
    from valorize.service.ports.cache import QueryCache
    from valorize.service.ports.categories import CategoryStore
    from valorize.service.ports.idempotency import (
        IdempotencyMark,
        IdempotencyRecord,
        IdempotencyStore,
        IdempotentReplay,
    )
    from valorize.service.ports.ledger import Ledger, TransactionFilter
    from valorize.service.ports.notifications import (
        AlertProfiles,
        EmailClaim,
        LivePublisher,
        Mailer,
        NotificationStore,
        OutgoingEmail,
    )
    from valorize.service.ports.pages import PageResult
    from valorize.service.ports.rate_limits import RateLimiter
    from valorize.service.ports.recurrences import RecurrenceStore
    from valorize.service.ports.rules import RuleStore
    from valorize.service.ports.security import LoginThrottle, PasswordHasher, RevocationFeed
    from valorize.service.ports.system import Clock, EventBus, Ids, NullBus
    from valorize.service.ports.tasks import Notifier, TaskQueue
    from valorize.service.ports.users import UserStore

# Each name is imported from its module when first asked for (PEP 562): a function that
# needs the ledger's ports does not import every other capability's domain with them.
_MODULE = {
    "AccountStore": "accounts",
    "AlertProfiles": "notifications",
    "AutomationStore": "automations",
    "BudgetStore": "budgets",
    "CategoryStore": "categories",
    "Clock": "system",
    "EmailClaim": "notifications",
    "EventBus": "system",
    "IdempotencyMark": "idempotency",
    "IdempotencyRecord": "idempotency",
    "IdempotencyStore": "idempotency",
    "IdempotentReplay": "idempotency",
    "Ids": "system",
    "Ledger": "ledger",
    "LivePublisher": "notifications",
    "LoginThrottle": "security",
    "Mailer": "notifications",
    "NotificationStore": "notifications",
    "Notifier": "tasks",
    "NullBus": "system",
    "OutgoingEmail": "notifications",
    "PageResult": "pages",
    "PasswordHasher": "security",
    "QueryCache": "cache",
    "RateLimiter": "rate_limits",
    "RecurrenceStore": "recurrences",
    "RevocationFeed": "security",
    "RuleStore": "rules",
    "TaskQueue": "tasks",
    "TransactionFilter": "ledger",
    "UserStore": "users",
}


def __getattr__(name: str) -> Any:
    module = _MODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AccountStore",
    "AlertProfiles",
    "AutomationStore",
    "BudgetStore",
    "CategoryStore",
    "Clock",
    "EmailClaim",
    "EventBus",
    "IdempotencyMark",
    "IdempotencyRecord",
    "IdempotencyStore",
    "IdempotentReplay",
    "Ids",
    "Ledger",
    "LivePublisher",
    "LoginThrottle",
    "Mailer",
    "NotificationStore",
    "Notifier",
    "NullBus",
    "OutgoingEmail",
    "PageResult",
    "PasswordHasher",
    "QueryCache",
    "RateLimiter",
    "RecurrenceStore",
    "RevocationFeed",
    "RuleStore",
    "TaskQueue",
    "TransactionFilter",
    "UserStore",
]
