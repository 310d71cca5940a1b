"""What the service layer needs from the outside world. Adapters implement these; unit tests
use in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from valorize.domain.alerts import AlertProfile
from valorize.domain.automation import Materialization, RuleJob, RuleJobPage
from valorize.domain.budget import Budget
from valorize.domain.events import Event
from valorize.domain.limits import LedgerReach
from valorize.domain.model import Account, ApiToken, Category, Transaction, User
from valorize.domain.notifications import (
    Notification,
    NotificationKind,
    NotificationPreferences,
    NotificationRequest,
    Unset,
)
from valorize.domain.recurrence import Recurrence
from valorize.domain.rules import Rule


@dataclass(frozen=True)
class IdempotencyRecord:
    """Stored in the same atomic write as the effect it guards, so a replay can never write
    twice and never loses the first answer."""

    key_hash: str
    fingerprint: str
    status: int
    body: Any
    expires_at: datetime


@dataclass
class IdempotencyMark:
    """Handed by the entry point to a command; the service seals it with its result."""

    key_hash: str
    fingerprint: str
    expires_at: datetime
    render: Callable[[Any], tuple[int, Any]]

    def seal(self, result: Any) -> IdempotencyRecord:
        status, body = self.render(result)
        return IdempotencyRecord(self.key_hash, self.fingerprint, status, body, self.expires_at)


class IdempotentReplay(Exception):
    """The key was already used: the stored record answers instead."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__("idempotent replay")
        self.record = record


@dataclass(frozen=True)
class TransactionFilter:
    account_id: str | None = None
    category_id: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    type: str | None = None
    import_id: str | None = None
    # Applied after the indexed query (magnitude range, text search).
    predicate: Callable[[Transaction], bool] | None = field(default=None, compare=False)


T = TypeVar("T")


@dataclass(frozen=True)
class PageResult(Generic[T]):
    items: list[T]
    next_cursor: str | None


class Store(Protocol):
    # users and tokens
    def create_user(
        self,
        user: User,
        password_hash: str,
        categories: Sequence[Category],
        token: ApiToken,
        secret_hash: str,
    ) -> None: ...
    def get_user(self, user_id: str) -> User | None: ...
    def find_credentials(self, email: str) -> tuple[str, str] | None: ...
    def add_token(
        self, token: ApiToken, secret_hash: str, idem: IdempotencyRecord | None = None
    ) -> None: ...
    def get_token(self, token_id: str) -> tuple[ApiToken, str] | None: ...
    def touch_token(self, token_id: str, when: datetime) -> None: ...
    def list_tokens(self, user_id: str) -> list[ApiToken]: ...
    def delete_token(self, user_id: str, token_id: str) -> bool: ...
    def get_idempotency(self, scope: str, key_hash: str) -> IdempotencyRecord | None: ...

    # accounts
    def add_account(
        self, user_id: str, account: Account, idem: IdempotencyRecord | None = None
    ) -> None: ...
    def get_account(self, user_id: str, account_id: str) -> Account | None: ...
    def get_accounts(self, user_id: str, account_ids: Sequence[str]) -> dict[str, Account]: ...
    def list_accounts(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Account]: ...
    def update_account(
        self, user_id: str, account_id: str, mutate: Callable[[Account], Account]
    ) -> Account: ...
    def delete_account(self, user_id: str, account_id: str) -> None: ...

    # categories
    def add_category(
        self, user_id: str, category: Category, idem: IdempotencyRecord | None = None
    ) -> None: ...
    def get_category(self, user_id: str, category_id: str) -> Category | None: ...
    def get_categories(self, user_id: str, ids: Sequence[str]) -> dict[str, Category]: ...
    def list_categories(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Category]: ...
    def update_category(self, user_id: str, old: Category, new: Category) -> None: ...
    def category_in_use(self, user_id: str, category_id: str) -> bool: ...
    def has_children(self, user_id: str, category_id: str) -> bool: ...
    def delete_category(
        self, user_id: str, category: Category, replacement_id: str | None
    ) -> None: ...

    # the dashboard read model
    def get_months(self, user_id: str, months: Sequence[str]) -> dict[str, dict[str, Any]]: ...
    def get_months_from(self, user_id: str, month: str) -> dict[str, dict[str, Any]]: ...
    def get_totals(self, user_id: str) -> dict[str, Any]: ...
    def check_limits(self, user_id: str, reach: LedgerReach, field_name: str = "amount") -> None:
        """Raise OutOfSafeRange (422) when a write that moves balances and all-time sums as
        `reach` says could take one out of the safe range (domain/limits.py). The ledger
        writes below call it themselves; a write in several batches (an import's commit or
        revert) calls it once, up front, with everything it will do."""
        ...

    # budgets
    def add_budget(self, user_id: str, budget: Budget) -> tuple[Budget, bool]: ...
    def get_budget(self, user_id: str, budget_id: str) -> Budget | None: ...
    def list_budgets(self, user_id: str) -> list[Budget]: ...
    def rename_budget(self, user_id: str, budget_id: str, name: str, now: datetime) -> Budget: ...
    def delete_budget(self, user_id: str, budget_id: str) -> bool: ...
    def get_incomes(self, user_id: str) -> dict[str, int]: ...
    def set_income(self, user_id: str, month: str, amount: int) -> None: ...
    def change_allocations(
        self,
        user_id: str,
        budget_ids: Sequence[str],
        mutate: Callable[[dict[str, Budget], dict[str, int]], list[Budget]],
    ) -> list[Budget]: ...

    # transactions
    def add_transactions(
        self,
        user_id: str,
        transactions: Sequence[Transaction],
        idem: IdempotencyRecord | None = None,
    ) -> None: ...
    def get_transaction(self, user_id: str, transaction_id: str) -> Transaction | None: ...
    def update_transaction(
        self,
        user_id: str,
        transaction_id: str,
        mutate: Callable[[Transaction, Transaction | None], tuple[Transaction, Transaction | None]],
    ) -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
        """Returns (old, new, old counterpart, new counterpart)."""
        ...

    def delete_transaction(self, user_id: str, transaction_id: str) -> list[Transaction]:
        """Returns what was deleted (both sides of a transfer)."""
        ...

    def list_transactions(
        self, user_id: str, flt: TransactionFilter, limit: int, cursor: str | None
    ) -> PageResult[Transaction]: ...

    # rules (a user has at most domain.rules.MAX_RULES, read whole)
    def list_rules(self, user_id: str) -> list[Rule]:
        """Every rule in run order, `position` = its index (domain.rules.numbered)."""
        ...

    def add_rule(self, user_id: str, place: Callable[[list[Rule]], Rule]) -> Rule:
        """Create the rule `place` makes from the current ones (it ranks it among them),
        counted against MAX_RULES atomically (a ValidationFailed beyond it)."""
        ...

    def update_rule(
        self, user_id: str, rule_id: str, mutate: Callable[[Rule, list[Rule]], Rule]
    ) -> Rule:
        """Write `mutate(rule, the others in run order)` if the rule did not change since it
        was read (else read again); NotFound when it is gone. Returns it with its position."""
        ...

    def delete_rule(self, user_id: str, rule_id: str) -> bool: ...

    # on-demand rules runs
    def add_rule_job(self, user_id: str, job: RuleJob) -> None: ...
    def get_rule_job(self, user_id: str, job_id: str) -> RuleJob | None: ...
    def start_rule_job_page(self, user_id: str, job_id: str, page: RuleJobPage) -> RuleJobPage:
        """Record the page unless it is recorded; return the record that stands."""
        ...

    def finish_rule_job_page(self, user_id: str, job_id: str, index: int, now: datetime) -> bool:
        """Mark the page done and add its counts to the job, once: False if it was done."""
        ...

    # recurrences
    def add_recurrence(
        self, user_id: str, recurrence: Recurrence, idem: IdempotencyRecord | None = None
    ) -> None: ...
    def get_recurrence(self, user_id: str, recurrence_id: str) -> Recurrence | None: ...
    def list_recurrences(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Recurrence]: ...
    def update_recurrence(
        self, user_id: str, recurrence_id: str, mutate: Callable[[Recurrence], Recurrence]
    ) -> Recurrence: ...
    def delete_recurrence(self, user_id: str, recurrence_id: str) -> bool: ...
    def due_recurrences(self, user_id: str, on: date) -> list[Recurrence]:
        """The user's recurrences whose next_due is on or before `on`."""
        ...

    def materialize(
        self,
        user_id: str,
        recurrence_id: str,
        plan: Callable[[Recurrence], Materialization | None],
    ) -> tuple[Recurrence, list[Transaction]] | None:
        """Atomically (re-run if a concurrent run got there first): read the recurrence, ask
        `plan` for a step, create the step's transactions whose ids do not exist yet (with
        their balance and read-model increments) and store the recurrence's new watermark.
        Returns (recurrence, created), None when the recurrence is gone or nothing was due."""
        ...

    # the scheduler's fan-out
    def users_with_due_recurrences(
        self, on: date, limit: int, cursor: str | None
    ) -> PageResult[str]:
        """User ids owning a recurrence with next_due <= on (a collection-group query, a page
        of `limit` recurrences at a time; ids may repeat across pages)."""
        ...

    def list_user_ids(self, limit: int, cursor: str | None) -> PageResult[str]: ...
    def record_automation_run(
        self, user_id: str, run_id: str, created: int, when: datetime
    ) -> None: ...


class EventBus(Protocol):
    def publish(self, event: Event) -> None:
        """Called after the change is committed; must never fail the write."""
        ...


class NullBus:
    def publish(self, event: Event) -> None:
        pass


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, hashed: str, password: str) -> bool: ...


class LoginThrottle(Protocol):
    def attempt(self, key: str) -> int:
        """Count one login attempt as a failure and, in the same atomic step, say how many
        seconds the key must still wait (0: go on and check the password)."""
        ...

    def succeeded(self, key: str) -> None:
        """The password was right: forget the key's failures."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class Ids(Protocol):
    def new_id(self) -> str: ...


class Notifier(Protocol):
    """Hands a notification to the notify function (a Cloud Task in production)."""

    def notify(self, request: NotificationRequest) -> None: ...


class TaskQueue(Protocol):
    def enqueue(
        self,
        queue: str,
        function: str,
        path: str,
        payload: dict[str, Any],
        name: str | None = None,
    ) -> None: ...


# --- notifications ----------------------------------------------------------------------------


class EmailClaim(StrEnum):
    CLAIMED = "claimed"  # this delivery sends the email
    DONE = "done"  # already emailed
    BUSY = "busy"  # another delivery holds the claim right now
    MISSING = "missing"  # no such notification


class NotificationStore(Protocol):
    """users/{uid}/notifications and the user's notification preferences."""

    def create_notification(self, user_id: str, notification: Notification) -> bool:
        """Store it unless one with its id exists (create-if-absent); True when stored."""
        ...

    def get_notification(self, user_id: str, notification_id: str) -> Notification | None: ...
    def list_notifications(
        self, user_id: str, unread_only: bool, limit: int, cursor: str | None
    ) -> PageResult[Notification]:
        """Newest first (by when it was stored)."""
        ...

    def count_unread(self, user_id: str) -> int: ...
    def mark_read(self, user_id: str, notification_id: str, when: datetime) -> Notification:
        """Mark it read (once: a read one keeps its read_at); NotFound when absent."""
        ...

    def mark_all_read(self, user_id: str, when: datetime) -> int:
        """Mark every unread one read; returns how many changed."""
        ...

    def claim_email(
        self, user_id: str, notification_id: str, now: datetime, lease: timedelta
    ) -> EmailClaim:
        """Take the right to email it: not yet emailed, and nobody else's claim younger than
        `lease` (a claim whose holder died expires)."""
        ...

    def finish_email(self, user_id: str, notification_id: str, sent_at: datetime | None) -> None:
        """Record that it was emailed (`sent_at`), or drop the claim (None: sending failed)."""
        ...

    def get_preferences(self, user_id: str) -> NotificationPreferences: ...
    def update_preferences(
        self,
        user_id: str,
        email: Mapping[NotificationKind, bool],
        threshold: int | Unset | None,
        when: datetime,
    ) -> None:
        """Write only what changed (merged), so concurrent changes to different kinds both
        stay."""
        ...


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str
    # The local part of the Message-ID (the mailer adds its domain): derived from the
    # notification, so a repeated sending of the same notification carries the same id.
    message_key: str


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> None:
        """Hand it to the mail server; raises when that fails."""
        ...


class LivePublisher(Protocol):
    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None:
        """Best effort: never raises; None when not published."""
        ...


class AlertProfiles(Protocol):
    """A cheap read of what a user wants alerts about (adapters/alert_profiles.py)."""

    def get(self, user_id: str) -> AlertProfile: ...
    def forget(self, user_id: str) -> None:
        """The profile's sources changed (accounts, envelopes, preferences): rebuild it."""
        ...
