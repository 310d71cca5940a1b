"""What the service layer needs from the outside world: one narrow port per aggregate or
capability, one module each. Adapters implement them (the Firestore ones in
adapters/firestore/, one module per port); unit tests use the fakes in tests/fakes/, and
tests/contracts/ runs the same suite against both."""

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
