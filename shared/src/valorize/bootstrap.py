"""The composition root: the one place that builds clients and wires adapters into services.

Clients are heavy (gRPC channels, connection pools), so each is created lazily on first use
and reused for the life of the instance; importing this module costs nothing.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from valorize.config import settings

if TYPE_CHECKING:
    import redis
    from google.cloud import firestore

    from valorize.adapters.alert_profiles import RedisAlertProfiles
    from valorize.adapters.cache import RedisQueryCache
    from valorize.adapters.email import SmtpMailer
    from valorize.adapters.firestore_notifications import FirestoreNotificationStore
    from valorize.adapters.firestore_store import FirestoreStore
    from valorize.adapters.notifier import TaskNotifier
    from valorize.adapters.realtime import RealtimePublisher
    from valorize.adapters.tasks import CloudTasksQueue
    from valorize.domain.alerts import AlertProfile
    from valorize.domain.model import Account
    from valorize.domain.notifications import Notification
    from valorize.domain.rules import RuleSet
    from valorize.service.accounts import AccountService
    from valorize.service.auth import AuthService
    from valorize.service.automations import AutomationService
    from valorize.service.budgets import BudgetService
    from valorize.service.categories import CategoryService
    from valorize.service.dashboard import DashboardService
    from valorize.service.imports import ImportService
    from valorize.service.messagebus import MessageBus
    from valorize.service.notifications import NotificationService
    from valorize.service.recurrences import RecurrenceService
    from valorize.service.rules import RuleService
    from valorize.service.transactions import TransactionService


@cache
def firestore_client() -> firestore.Client:
    from google.cloud import firestore

    return firestore.Client(project=settings().project)


@cache
def redis_client() -> redis.Redis:
    import redis

    # Short timeouts: Redis serves throttles and caches, never the source of truth, so a
    # slow Redis must not hold a request hostage.
    return redis.Redis.from_url(
        settings().redis_url,
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
        health_check_interval=30,
    )


@cache
def store() -> FirestoreStore:
    from valorize.adapters.firestore_store import FirestoreStore

    return FirestoreStore(firestore_client())


@cache
def bus() -> MessageBus:
    """Every handler of every domain event, wired once per instance."""
    from valorize.service.messagebus import MessageBus

    message_bus = MessageBus()
    _subscribe_cache_invalidation(message_bus)
    _subscribe_live_updates(message_bus)
    _subscribe_alerts(message_bus)
    return message_bus


def _subscribe_live_updates(message_bus: MessageBus) -> None:
    """Push each change to the owner's open Socket.IO connections (entrypoints/live.py)."""
    from valorize.entrypoints.live import LiveUpdates

    LiveUpdates(realtime_publisher(), store().get_accounts).subscribe(message_bus)


@cache
def realtime_publisher() -> RealtimePublisher:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from valorize.adapters.realtime import EventLog, RealtimePublisher

    s = settings()
    # Its own client: one attempt and short timeouts (redis-py retries 3 times by default), so
    # a Redis outage never holds up a write that already committed; the publisher then pauses.
    client = redis.Redis.from_url(
        s.redis_url,
        socket_timeout=0.2,
        socket_connect_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    event_log = EventLog(client, s.realtime_log_events, s.realtime_log_seconds)
    return RealtimePublisher(event_log, cooldown=s.realtime_breaker_seconds)


def _subscribe_cache_invalidation(message_bus: MessageBus) -> None:
    """Any change a user can see bumps that user's cache version (one INCR)."""
    from valorize.domain import events

    def bump(event: events.Event) -> None:
        query_cache().bump(event.user_id)

    for kind in (
        events.TransactionCreated,
        events.TransactionUpdated,
        events.TransactionDeleted,
        events.AccountChanged,
        events.AccountDeleted,
        events.CategoryChanged,
    ):
        message_bus.subscribe(kind, bump)


@cache
def query_cache() -> RedisQueryCache:
    from valorize.adapters.cache import RedisQueryCache

    return RedisQueryCache(
        redis_client(),
        ttl=settings().cache_ttl_seconds,
        breaker_seconds=settings().cache_breaker_seconds,
    )


@cache
def budget_service() -> BudgetService:
    from valorize.adapters.system import SystemClock
    from valorize.service.budgets import BudgetService

    return BudgetService(store(), SystemClock(), bus())


@cache
def dashboard_service() -> DashboardService:
    from valorize.adapters.system import SystemClock
    from valorize.service.dashboard import DashboardService

    return DashboardService(store(), SystemClock(), query_cache())


@cache
def auth_service() -> AuthService:
    from valorize.adapters.security import Argon2Hasher, RedisLoginThrottle
    from valorize.adapters.system import SystemClock, Uuid7Ids
    from valorize.service.auth import AuthService

    return AuthService(
        store(), Argon2Hasher(), RedisLoginThrottle(redis_client()), SystemClock(), Uuid7Ids()
    )


@cache
def account_service() -> AccountService:
    from valorize.adapters.system import SystemClock, Uuid7Ids
    from valorize.service.accounts import AccountService

    return AccountService(store(), SystemClock(), Uuid7Ids(), bus())


@cache
def category_service() -> CategoryService:
    from valorize.adapters.system import SystemClock, Uuid7Ids
    from valorize.service.categories import CategoryService

    return CategoryService(store(), SystemClock(), Uuid7Ids(), bus())


@cache
def transaction_service() -> TransactionService:
    from valorize.adapters.system import SystemClock, Uuid7Ids
    from valorize.service.transactions import TransactionService

    return TransactionService(store(), SystemClock(), Uuid7Ids(), bus(), rules=rules_for)


@cache
def task_queue() -> CloudTasksQueue:
    from valorize.adapters.tasks import CloudTasksQueue

    return CloudTasksQueue(settings().project)


@cache
def notifier() -> TaskNotifier:
    from valorize.adapters.notifier import TaskNotifier

    return TaskNotifier(task_queue())


@cache
def rule_service() -> RuleService:
    from valorize.adapters.system import SystemClock, Uuid7Ids
    from valorize.service.rules import RuleService

    return RuleService(
        store(),
        SystemClock(),
        Uuid7Ids(),
        queue=task_queue(),
        apply_rules=lambda user_id, txn_id, ruleset: transaction_service().apply_rules(
            user_id, txn_id, ruleset
        ),
    )


def rules_for(user_id: str) -> RuleSet:
    """The user's rule set, loaded per request: every path that creates transactions (manual
    create, recurrence occurrences, import commits) passes them through it."""
    return rule_service().ruleset(user_id)


@cache
def recurrence_service() -> RecurrenceService:
    from valorize.adapters.system import SystemClock, Uuid7Ids
    from valorize.service.recurrences import RecurrenceService

    return RecurrenceService(store(), SystemClock(), Uuid7Ids())


@cache
def automation_service() -> AutomationService:
    from valorize.adapters.system import SystemClock
    from valorize.service.automations import AutomationService

    return AutomationService(
        store(),
        SystemClock(),
        task_queue(),
        notifier(),
        rules=rules_for,
        month_summary=lambda user_id, month: dashboard_service().summary(user_id, month),
        bus=bus(),
    )


# --- notifications and alerts -----------------------------------------------------------------


@cache
def notification_store() -> FirestoreNotificationStore:
    from valorize.adapters.firestore_notifications import FirestoreNotificationStore

    return FirestoreNotificationStore(firestore_client())


@cache
def mailer() -> SmtpMailer | None:
    """None when no SMTP server is configured (notifications are then not emailed)."""
    from valorize.adapters.email import SmtpConfig, SmtpMailer

    config = SmtpConfig.from_env()
    return SmtpMailer(config) if config is not None else None


@cache
def notification_service() -> NotificationService:
    from valorize.adapters.system import SystemClock
    from valorize.entrypoints.notification_schemas import NotificationOut
    from valorize.service.notifications import NotificationService

    def render(notification: Notification) -> dict[str, object]:
        # The realtime payload is what GET /api/notifications answers for it.
        return NotificationOut.of(notification).model_dump(mode="json")

    return NotificationService(
        notification_store(),
        store().get_user,
        SystemClock(),
        realtime_publisher(),
        mailer(),
        render,
        on_preferences_changed=alert_profiles().forget,
    )


@cache
def alert_profiles() -> RedisAlertProfiles:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from valorize.adapters.alert_profiles import RedisAlertProfiles
    from valorize.entrypoints.alerts import build_profile

    # Read on every ledger write: one attempt and short timeouts, like the realtime client.
    client = redis.Redis.from_url(
        settings().redis_url,
        socket_timeout=0.2,
        socket_connect_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )

    def accounts(user_id: str) -> list[Account]:
        found, cursor = [], None
        while True:
            page = store().list_accounts(user_id, 200, cursor)
            found += page.items
            if page.next_cursor is None:
                return found
            cursor = page.next_cursor

    def build(user_id: str) -> AlertProfile:
        return build_profile(store(), notification_store().get_preferences, accounts, user_id)

    return RedisAlertProfiles(client, build, cooldown=settings().realtime_breaker_seconds)


def _subscribe_alerts(message_bus: MessageBus) -> None:
    """Low balance, large transaction, envelope overspent (entrypoints/alerts.py)."""
    from valorize.adapters.system import SystemClock
    from valorize.entrypoints.alerts import Alerts
    from valorize.service.budgets import BudgetService

    # Its own BudgetService without the bus: it only reads.
    envelopes = BudgetService(store(), SystemClock())
    Alerts(alert_profiles(), store(), envelopes.envelope, notifier(), SystemClock()).subscribe(
        message_bus
    )


# --- imports ----------------------------------------------------------------------------------


@cache
def import_service() -> ImportService:
    import os

    from valorize.adapters.firestore_imports import FirestoreImports
    from valorize.adapters.statement_files import GcsStatementFiles
    from valorize.adapters.system import SystemClock, Uuid7Ids
    from valorize.service import imports

    env = os.environ
    return imports.ImportService(
        store(),
        FirestoreImports(firestore_client(), store()),
        GcsStatementFiles(settings().project),
        task_queue(),
        notifier(),
        realtime_publisher(),
        SystemClock(),
        Uuid7Ids(),
        bus(),
        rules=rules_for,
        ledger_changed=lambda user_id: query_cache().bump(user_id),
        max_bytes=int(env.get("VALORIZE_MAX_STATEMENT_BYTES", imports.MAX_STATEMENT_BYTES)),
        inline_rows=int(env.get("VALORIZE_IMPORT_INLINE_ROWS", imports.INLINE_ROWS)),
    )
