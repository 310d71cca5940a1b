"""The composition root: `build(settings, **overrides)` returns the `Services` of one process,
the only place that makes clients and wires adapters into services.

Over 600 lines on purpose: one member per client, port, capability and service (a few lines
each), kept in one class so that the one place that builds things stays one place; splitting
it by area would bring back the lookups from everywhere this module replaced.

Every member is built on first use and then reused for the life of the instance (clients
are heavy: gRPC channels, connection pools), so building `Services` costs nothing and a
function only pays for what its requests touch. A member given by name to `build` is used
as it is: tests pass fakes for the ports and capabilities (tests/fakes), and get the real
services, bus and subscribers wired to them, in one line.

    services = bootstrap.build(Settings(), ledger=..., account_store=..., clock=...)
    services.transactions.create(user_id, command)

Each function's main.py builds its Services once, when the instance starts, and hands them
to its FunctionApp, which hands them to each handler in its Call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from valorize.config import Settings

if TYPE_CHECKING:
    from google.cloud import storage  # type: ignore[attr-defined]  # noqa: I001
    from google.cloud import tasks_v2
    from google.auth.transport.requests import Request as GoogleTransport
    from google.cloud.firestore import Client as FirestoreClient
    from redis import Redis

    from valorize.adapters.feeds import RedisFeeds
    from valorize.domain.alerts import AlertProfile
    from valorize.domain.notifications import Notification
    from valorize.service.accounts import AccountService
    from valorize.service.auth import AuthService
    from valorize.service.automations import AutomationService
    from valorize.service.budgets import BudgetService
    from valorize.service.categories import CategoryService
    from valorize.service.dashboard import DashboardService
    from valorize.service.ports.imports import ImportRepository as ImportStore
    from valorize.service.imports import ImportService
    from valorize.service.integrity import IntegrityCheck
    from valorize.service.ports.cache import Scope
    from valorize.service.ports.imports import StatementFiles
    from valorize.service.messagebus import MessageBus
    from valorize.service.notifications import NotificationService
    from valorize.service.rate_limits import RateLimits
    from valorize.service.ports import (
        AccountStore,
        AlertProfiles,
        AutomationStore,
        BudgetStore,
        CategoryStore,
        Clock,
        EventBus,
        IdempotencyStore,
        Ids,
        Ledger,
        LivePublisher,
        LoginThrottle,
        Mailer,
        NotificationStore,
        Notifier,
        PasswordHasher,
        QueryCache,
        RateLimiter,
        RecurrenceStore,
        RevocationFeed,
        RuleStore,
        TaskQueue,
        UserStore,
    )
    from valorize.service.recurrences import RecurrenceService
    from valorize.service.rules import RuleService
    from valorize.service.task_pushes import TaskPushes
    from valorize.service.transactions import TransactionService

# realtime_server/'s reads of the event log (`redis_log_reader`).
LOG_READ_TIMEOUT = 1.0
LOG_READ_CONNECTIONS = 16
# What `Services.warm` reads to bring a client's connection up: an object that never exists
# (no adapter writes under "_warmup"; Firestore reserves only ids of the form __x__).
WARM_COLLECTION = "_warmup"
WARM_OBJECT = "_warmup/instance"
# The longest one warm-up call may take: past it the client is left to be built on first use.
WARM_TIMEOUT = 10.0

log = logging.getLogger(__name__)


class Services:
    """The clients, ports and services of one process, each built on first use.

    Ports are named after what they store (`ledger`, `account_store`...), so they never
    clash with the services (`accounts`, `transactions`...)."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.settings = settings
        unknown = sorted(set(overrides) - _members())
        if unknown:
            raise TypeError(f"Services has no member {', '.join(unknown)}")
        # A cached_property looks in the instance's __dict__ first: an override is simply
        # the member, already built.
        self.__dict__.update(overrides)

    # --- warm-up at instance start ------------------------------------------------------------

    def warm(self, clients: Iterable[str]) -> dict[str, float | None]:
        """Build `clients` (names of functions/registry.py's Function.clients) now, each with
        one cheap call so its connection is up, instead of on the first request; returns
        the seconds each took (None: failed).

        A client that fails (its backend down or slow) is logged and skipped: it is built on
        first use as before, so an outage of Redis or Firestore delays an instance's start by
        at most WARM_TIMEOUT instead of keeping it out of service."""
        steps: dict[str, Callable[[], object]] = {
            "firestore": lambda: (
                self.firestore.collection(WARM_COLLECTION)
                .document("instance")
                .get(timeout=WARM_TIMEOUT)
            ),
            "redis": lambda: self.redis.ping(),
            # Subscribed before the first request, so tokens are kept from the first one on.
            "revocations": self._warm_revocations,
            "tasks": lambda: self.task_queue and self.tasks_client,
            "statements": lambda: self.statements_bucket.get_blob(
                WARM_OBJECT, timeout=WARM_TIMEOUT
            ),
        }
        took: dict[str, float | None] = {}
        for name in clients:
            step = steps.get(name)
            if step is None:
                raise ValueError(f"no client {name!r} to warm; known: {', '.join(steps)}")
            started = time.perf_counter()
            try:
                step()
                took[name] = round(time.perf_counter() - started, 3)
            except Exception as error:  # noqa: BLE001 - any failure: built on first use instead
                log.warning("warm-up of %s failed, built on first use: %r", name, error)
                took[name] = None
        return took

    def _warm_revocations(self) -> None:
        if self.settings.token_cache_seconds > 0 and not self.auth.tokens.listen():
            raise ConnectionError("revocation feed not live (tokens looked up per request)")

    # --- clients (the only place they are made) -----------------------------------------------

    @cached_property
    def firestore(self) -> FirestoreClient:
        from google.cloud import firestore

        from valorize.adapters.firestore.deadlines import bound

        client = firestore.Client(project=self.settings.project)
        bound(client, self.settings.firestore_deadline_seconds)
        return client

    @cached_property
    def redis(self) -> Redis:
        """For the query cache, the login throttle and the rate limits."""
        # Short timeouts: Redis serves throttles and caches, never the source of truth, so a
        # slow Redis must not hold a request hostage.
        return self._redis(0.25, retries=True)

    @cached_property
    def redis_best_effort(self) -> Redis:
        """For what a write does after it committed (realtime events, alert profiles): one
        attempt and short timeouts (redis-py retries 3 times by default), so a Redis outage
        never holds up a write that already committed; its users then pause."""
        return self._redis(0.2, retries=False)

    def _redis(self, timeout: float, *, retries: bool) -> Redis:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        extra: dict[str, Any] = {} if retries else {"retry": Retry(NoBackoff(), 0)}
        client: Redis = redis.Redis.from_url(
            self.settings.redis_url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            **extra,
        )
        return client

    @cached_property
    def redis_log_reader(self) -> Redis:
        """For realtime_server/'s catch-up reads of the event log: a bounded pool, so a
        reconnect storm (an instance gone, its clients arriving here) waits for a few
        connections instead of opening hundreds at once; past the timeout the client is told
        to refetch instead."""
        import redis

        pool = redis.BlockingConnectionPool.from_url(
            self.settings.redis_url,
            max_connections=LOG_READ_CONNECTIONS,
            timeout=LOG_READ_TIMEOUT,
            socket_timeout=LOG_READ_TIMEOUT,
            socket_connect_timeout=LOG_READ_TIMEOUT,
        )
        return redis.Redis(connection_pool=pool)

    @cached_property
    def oidc_transport(self) -> GoogleTransport:
        """For checking the OIDC tokens of internal calls (entrypoints/internal.py): an HTTP
        transport that caches Google's signing keys as long as their Cache-Control allows
        (hours), instead of fetching them on every task (google-auth itself does not)."""
        import cachecontrol
        import requests
        from google.auth.transport.requests import Request

        return Request(session=cachecontrol.CacheControl(requests.Session()))

    @cached_property
    def tasks_client(self) -> tasks_v2.CloudTasksClient:
        from google.cloud import tasks_v2

        emulator = self.settings.tasks_emulator_host
        if emulator:
            import grpc
            from google.cloud.tasks_v2.services.cloud_tasks.transports import (
                CloudTasksGrpcTransport,
            )

            channel = grpc.insecure_channel(emulator)
            return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        return tasks_v2.CloudTasksClient()

    @cached_property
    def statements_bucket(self) -> storage.Bucket:
        from google.cloud import storage  # type: ignore[attr-defined]

        if self.settings.storage_emulator_host:
            from google.auth.credentials import AnonymousCredentials

            client = storage.Client(
                project=self.settings.project,
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            )
        else:
            client = storage.Client(project=self.settings.project)
        return client.bucket(self.settings.statements_bucket)

    # --- ports on Firestore -------------------------------------------------------------------

    @cached_property
    def ledger(self) -> Ledger:
        from valorize.adapters.firestore.ledger import FirestoreLedger

        return FirestoreLedger(self.firestore, self.settings.contention_budget_seconds)

    @cached_property
    def account_store(self) -> AccountStore:
        from valorize.adapters.firestore.accounts import FirestoreAccounts

        return FirestoreAccounts(self.firestore, self.settings.contention_budget_seconds)

    @cached_property
    def category_store(self) -> CategoryStore:
        from valorize.adapters.firestore.categories import FirestoreCategories

        return FirestoreCategories(self.firestore, self.settings.contention_budget_seconds)

    @cached_property
    def budget_store(self) -> BudgetStore:
        from valorize.adapters.firestore.budgets import FirestoreBudgets

        return FirestoreBudgets(self.firestore, self.settings.contention_budget_seconds)

    @cached_property
    def rule_store(self) -> RuleStore:
        from valorize.adapters.firestore.rules import FirestoreRules
        from valorize.adapters.near_rules import CHANNEL, NearRules

        s = self.settings
        store = FirestoreRules(self.firestore, s.contention_budget_seconds)
        if s.near_cache_seconds <= 0:
            return store
        # Every create runs the user's rules: kept in memory, their changes announced.
        return NearRules(
            store, self.redis_best_effort, self.feeds.channel(CHANNEL), ttl=s.near_cache_seconds
        )

    @cached_property
    def recurrence_store(self) -> RecurrenceStore:
        from valorize.adapters.firestore.recurrences import FirestoreRecurrences

        return FirestoreRecurrences(self.firestore, self.settings.contention_budget_seconds)

    @cached_property
    def user_store(self) -> UserStore:
        from valorize.adapters.firestore.users import FirestoreUsers

        return FirestoreUsers(self.firestore)

    @cached_property
    def idempotency_store(self) -> IdempotencyStore:
        from valorize.adapters.firestore.idempotency import FirestoreIdempotency

        return FirestoreIdempotency(self.firestore)

    @cached_property
    def notification_store(self) -> NotificationStore:
        from valorize.adapters.firestore.notifications import FirestoreNotificationStore

        return FirestoreNotificationStore(self.firestore, self.settings.contention_budget_seconds)

    @cached_property
    def automation_store(self) -> AutomationStore:
        from valorize.adapters.firestore.automations import FirestoreAutomations

        return FirestoreAutomations(self.firestore)

    @cached_property
    def import_store(self) -> ImportStore:
        from valorize.adapters.firestore.imports import FirestoreImports

        return FirestoreImports(self.firestore)

    # --- other capabilities -------------------------------------------------------------------

    @cached_property
    def clock(self) -> Clock:
        from valorize.adapters.system import SystemClock

        return SystemClock()

    @cached_property
    def ids(self) -> Ids:
        from valorize.adapters.system import Uuid7Ids

        return Uuid7Ids()

    @cached_property
    def hasher(self) -> PasswordHasher:
        from valorize.adapters.security import Argon2Hasher

        return Argon2Hasher()

    @cached_property
    def throttle(self) -> LoginThrottle:
        from valorize.adapters.security import RedisLoginThrottle

        return RedisLoginThrottle(self.redis)

    @cached_property
    def feeds(self) -> RedisFeeds:
        """The instance's one subscription to the announcement channels (token revocations,
        cache bumps, rules changes), read once per request (FunctionApp)."""
        from valorize.adapters import near_rules, revocations
        from valorize.adapters.cache import BUMPED
        from valorize.adapters.feeds import RedisFeeds

        # No silent reconnects: redis-py would resubscribe by itself and hide that
        # announcements were missed meanwhile; the feed must see every break to reset.
        channels = [revocations.CHANNEL, BUMPED, near_rules.CHANNEL]
        return RedisFeeds(self.redis_best_effort, channels)

    @cached_property
    def revocations(self) -> RevocationFeed:
        from valorize.adapters.revocations import CHANNEL, RedisRevocationFeed

        return RedisRevocationFeed(self.redis_best_effort, self.feeds.channel(CHANNEL))

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        from valorize.adapters.rate_limits import RedisRateLimiter
        from valorize.service.rate_limits import UPLOADS, WRITES

        s = self.settings
        return RedisRateLimiter(
            self.redis,
            {WRITES: s.write_rate, UPLOADS: s.upload_rate},
            breaker_seconds=s.cache_breaker_seconds,
        )

    @cached_property
    def query_cache(self) -> QueryCache:
        from valorize.adapters.cache import BUMPED, NearQueryCache, RedisQueryCache

        s = self.settings
        remote = RedisQueryCache(
            self.redis, ttl=s.cache_ttl_seconds, breaker_seconds=s.cache_breaker_seconds
        )
        if s.near_cache_seconds <= 0:
            return remote
        feed = self.feeds.channel(BUMPED)
        return NearQueryCache(remote, feed, ttl=s.near_cache_seconds, max_bytes=s.near_cache_bytes)

    @cached_property
    def task_queue(self) -> TaskQueue:
        from valorize.adapters.tasks import CloudTasksQueue

        return CloudTasksQueue(self.settings, lambda: self.tasks_client)

    @cached_property
    def notifier(self) -> Notifier:
        from valorize.adapters.notifier import TaskNotifier

        return TaskNotifier(self.task_queue)

    @cached_property
    def statement_files(self) -> StatementFiles:
        from valorize.adapters.statement_files import GcsStatementFiles

        return GcsStatementFiles(lambda: self.statements_bucket)

    @cached_property
    def realtime(self) -> LivePublisher:
        from valorize.adapters.realtime import EventLog, RealtimePublisher

        s = self.settings
        event_log = EventLog(self.redis_best_effort, s.realtime_log_events, s.realtime_log_seconds)
        # A task's push (publish_once) is part of its effect: retries and the usual timeouts.
        sure_log = EventLog(self.redis, s.realtime_log_events, s.realtime_log_seconds)
        return RealtimePublisher(event_log, cooldown=s.realtime_breaker_seconds, sure_log=sure_log)

    @cached_property
    def task_pushes(self) -> TaskPushes:
        """What the services publish live events through: best effort in a request, sure in a
        task (service/task_pushes.py; the HTTP pipeline opens each task's delivery)."""
        from valorize.service.task_pushes import TaskPushes

        return TaskPushes(self.realtime, self.idempotency_store, self.clock)

    @cached_property
    def mailer(self) -> Mailer | None:
        """None when no SMTP server is configured (notifications are then not emailed)."""
        from valorize.adapters.email import SmtpMailer

        smtp = self.settings.smtp
        return SmtpMailer(smtp) if smtp is not None else None

    @cached_property
    def alert_profiles(self) -> AlertProfiles:
        from valorize.adapters.alert_profiles import RedisAlertProfiles

        return RedisAlertProfiles(
            self.redis_best_effort,
            self.alert_profile,
            cooldown=self.settings.realtime_breaker_seconds,
        )

    def alert_profile(self, user_id: str) -> AlertProfile:
        """What the user wants alerts about, from the stores (`alert_profiles` caches it)."""
        from valorize.service.alerts import build_profile
        from valorize.service.ports.pages import walk

        return build_profile(
            self.user_store,
            self.budget_store,
            self.notification_store.get_preferences,
            lambda uid: list(walk(lambda c: self.account_store.list_accounts(uid, 200, c))),
            user_id,
        )

    @cached_property
    def bus(self) -> EventBus:
        """Every handler of every domain event."""
        from valorize.service.messagebus import MessageBus

        bus = MessageBus()
        self._subscribe_cache_invalidation(bus)
        self._subscribe_live_updates(bus)
        self._subscribe_alerts(bus)
        return bus

    def _subscribe_cache_invalidation(self, bus: MessageBus) -> None:
        """Any change a user can see bumps that user's cache version (one INCR)."""
        from valorize.domain import events

        def bump(event: events.Event) -> None:
            self.query_cache.bump(event.user_id)

        for kind in (
            events.TransactionCreated,
            events.TransactionUpdated,
            events.TransactionDeleted,
            events.AccountChanged,
            events.AccountDeleted,
            events.AccountDeleting,
            events.CategoryChanged,
            events.BudgetChanged,
        ):
            bus.subscribe(kind, bump)

    def _bump(self, user_id: str, scope: Scope) -> None:
        """The other scopes' invalidation: their stores, wrapped (service/cache_scopes.py)."""
        self.query_cache.bump(user_id, scope)

    def _subscribe_live_updates(self, bus: MessageBus) -> None:
        """Push each change to the owner's open Socket.IO connections (service/live_updates.py),
        in the JSON the API answers with (entrypoints/schemas.py)."""
        from valorize.entrypoints.schemas import ApiPayloads
        from valorize.service.live_updates import LiveUpdates

        LiveUpdates(self.task_pushes, self.account_store.get_accounts, ApiPayloads()).subscribe(bus)

    def _subscribe_alerts(self, bus: MessageBus) -> None:
        """Low balance, large transaction, envelope overspent (service/alerts.py)."""
        from valorize.service.alerts import Alerts

        # Reached through lambdas: building them here would need the bus being built.
        Alerts(
            self.alert_profiles,
            self.account_store,
            lambda *a: self.budgets.envelope(*a),
            self.notifier,
            self.clock,
        ).subscribe(bus)

    # --- services -----------------------------------------------------------------------------

    @cached_property
    def auth(self) -> AuthService:
        from valorize.service.auth import AuthService

        return AuthService(
            self.user_store,
            self.hasher,
            self.throttle,
            self.clock,
            self.ids,
            self.revocations,
            self.settings.token_cache_seconds,
            changed=lambda user_id: self.query_cache.bump(user_id, "auth"),
        )

    @cached_property
    def rate_limits(self) -> RateLimits:
        from valorize.service.rate_limits import RateLimits

        return RateLimits(self.rate_limiter)

    @cached_property
    def accounts(self) -> AccountService:
        from valorize.service import accounts
        from valorize.service.cache_scopes import ACCOUNTS, watched

        s = self.settings
        return accounts.AccountService(
            watched(self.account_store, ACCOUNTS, self._bump),
            self.clock,
            self.ids,
            self.bus,
            queue=self.task_queue,
            max_accounts=s.max_accounts,
            delete_page=s.account_delete_page or accounts.DELETE_PAGE,
            delete_budget=s.account_delete_budget_seconds or accounts.DELETE_BUDGET_SECONDS,
        )

    @cached_property
    def categories(self) -> CategoryService:
        from valorize.service.categories import CategoryService

        return CategoryService(
            self.category_store,
            self.clock,
            self.ids,
            self.bus,
            max_categories=self.settings.max_categories,
        )

    @cached_property
    def transactions(self) -> TransactionService:
        from valorize.service.transactions import TransactionService

        return TransactionService(
            self.ledger,
            self.account_store,
            self.category_store,
            self.clock,
            self.ids,
            self.bus,
            rules=self._rules_for,
        )

    def _rules_for(self, user_id: str) -> Any:
        """The user's rule set, loaded per request: every path that creates transactions
        (manual create, recurrence occurrences, import commits) passes them through it."""
        return self.rules.ruleset(user_id)

    @cached_property
    def budgets(self) -> BudgetService:
        from valorize.service.budgets import BudgetService

        return BudgetService(
            self.budget_store,
            self.category_store,
            self.user_store,
            self.ledger,
            self.clock,
            self.bus,
        )

    @cached_property
    def dashboard(self) -> DashboardService:
        from valorize.service.dashboard import DashboardService

        return DashboardService(
            self.user_store,
            self.account_store,
            self.category_store,
            self.ledger,
            self.clock,
        )

    @cached_property
    def integrity(self) -> IntegrityCheck:
        from valorize.service.integrity import IntegrityCheck

        return IntegrityCheck(self.ledger, self.account_store, self.automation_store)

    @cached_property
    def rules(self) -> RuleService:
        from valorize.service.cache_scopes import RULES, watched
        from valorize.service.rules import RuleService

        return RuleService(
            watched(self.rule_store, RULES, self._bump),
            self.account_store,
            self.category_store,
            self.ledger,
            self.clock,
            self.ids,
            queue=self.task_queue,
            apply_rules=lambda *a: self.transactions.apply_rules(*a),
            max_rules=self.settings.max_rules,
            budget=self.settings.rules_budget_ms / 1000,
        )

    @cached_property
    def recurrences(self) -> RecurrenceService:
        from valorize.service.cache_scopes import RECURRENCES, watched
        from valorize.service.recurrences import RecurrenceService

        return RecurrenceService(
            watched(self.recurrence_store, RECURRENCES, self._bump),
            self.account_store,
            self.category_store,
            self.clock,
            self.ids,
            max_recurrences=self.settings.max_recurrences,
            backdate_days=self.settings.recurrence_backdate_days,
        )

    @cached_property
    def automations(self) -> AutomationService:
        from valorize.service.automations import AutomationService
        from valorize.service.cache_scopes import RECURRENCES, watched

        return AutomationService(
            self.automation_store,
            # Each run moves its recurrences' next due dates.
            watched(self.recurrence_store, RECURRENCES, self._bump),
            self.account_store,
            self.category_store,
            self.clock,
            self.task_queue,
            self.notifier,
            rules=self._rules_for,
            month_summary=lambda *a: self.dashboard.summary(*a),
            bus=self.bus,
            occurrences_per_run=self.settings.recurrence_occurrences_per_run,
        )

    @cached_property
    def notifications(self) -> NotificationService:
        from valorize.entrypoints.notification_schemas import NotificationOut
        from valorize.service.cache_scopes import NOTIFICATIONS, watched
        from valorize.service.notifications import NotificationService

        def render(notification: Notification) -> dict[str, object]:
            # The realtime payload is what GET /api/notifications answers for it.
            return NotificationOut.of(notification).model_dump(mode="json")

        return NotificationService(
            # What the notify worker stores and the user marks read bumps the inbox's scope.
            watched(self.notification_store, NOTIFICATIONS, self._bump),
            self.user_store.get_user,
            self.clock,
            self.realtime,
            self.mailer,
            render,
            on_preferences_changed=lambda user_id: self.alert_profiles.forget(user_id),
        )

    @cached_property
    def imports(self) -> ImportService:
        from valorize.service import imports
        from valorize.service.cache_scopes import IMPORTS, watched

        s = self.settings
        return imports.ImportService(
            self.user_store,
            self.account_store,
            self.ledger,
            # Every state, progress tick and row the workers write bumps the imports' scope.
            watched(self.import_store, IMPORTS, self._bump),
            self.statement_files,
            self.task_queue,
            self.notifier,
            self.task_pushes,
            self.clock,
            self.ids,
            self.bus,
            rules=self._rules_for,
            ledger_changed=lambda user_id: self.query_cache.bump(user_id),
            max_bytes=s.max_statement_bytes or imports.MAX_STATEMENT_BYTES,
            max_accounts=s.max_accounts,
            inline_rows=s.import_inline_rows or imports.INLINE_ROWS,
        )


@cache
def _members() -> frozenset[str]:
    return frozenset(n for n, v in vars(Services).items() if isinstance(v, cached_property))


def build(settings: Settings | None = None, **overrides: Any) -> Services:
    """The Services of `settings` (default: from the environment), with `overrides` (a port,
    a client, a capability or a service, by its member name) used as given."""
    return Services(settings if settings is not None else Settings.from_env(), **overrides)
