"""The automate use case: Cloud Scheduler's runs, fanned out to one Cloud Task per user.

A run (`daily` or `month_start`, for a day) never scans every user's data in one request:

* daily: a collection-group query over recurrences with `next_due <= day` names the users with
  due work, a page at a time (deduplicated per page);
* month_start: every user, a page at a time (each gets the summary of the month that ended).

Each page enqueues one task per user (`auto-<kind>-<day>-<uid>`) and, when the page was full,
the next page as a task of its own. The user task materializes every due occurrence of the
user's recurrences (exactly once: see domain/automation.py), runs the user's rules on them,
and notifies. Running the same day twice changes nothing the second time; a run for a later
day catches up on what a missed run left (the watermark is per recurrence, not per run).

Notifications are handed to the notify function after the ledger write has committed. Their
ids are deterministic (`recurrence-<id>-<first>-<last>`, `month-summary-YYYY-MM`), so a
redelivery stores each once; a failure to enqueue one is logged and does not fail the task
(the ledger is the source of truth, the notification a courtesy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from valorize.domain import automation as auto
from valorize.domain.automation import AutomationKind
from valorize.domain.ceilings import OCCURRENCES_PER_RUN
from valorize.domain.errors import NotFound
from valorize.domain.events import BalancesChanged, TransactionCreated
from valorize.domain.limits import OutOfSafeRange
from valorize.domain.model import Transaction
from valorize.domain.money import minor_unit_exponent
from valorize.domain.notifications import NotificationKind, NotificationRequest, notification_id
from valorize.domain.recurrence import Recurrence
from valorize.domain.rules import RuleSet
from valorize.service.ports import (
    AccountStore,
    AutomationStore,
    CategoryStore,
    Clock,
    EventBus,
    Notifier,
    NullBus,
    RecurrenceStore,
    TaskQueue,
)

if TYPE_CHECKING:
    from valorize.service.dashboard import CurrencySummary, Summary

log = logging.getLogger(__name__)
# The log marker of an occurrence refused for the money limits (it is retried every run).
RECURRENCE_REFUSED = "recurrence_refused"

QUEUE = "automations"
FUNCTION = "automate"
USER_PATH = "/api/automations/user"
FANOUT_PATH = "/api/automations/fanout"
# Recurrences (daily) or users (month_start) per fan-out page.
FANOUT_PAGE = 500


def run_day(given: date | None, schedule_time: str | None, now: datetime) -> date:
    """The day a run is for: the body's date, else the UTC date of Cloud Scheduler's
    X-CloudScheduler-ScheduleTime header (RFC 3339), else today in UTC."""
    if given is not None:
        return given
    if schedule_time:
        try:
            when = datetime.fromisoformat(schedule_time.strip().replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return when.astimezone(UTC).date()
    return now.astimezone(UTC).date() if now.tzinfo else now.date()


def previous_month(on: date) -> str:
    year, month = (on.year, on.month - 1) if on.month > 1 else (on.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def format_money(amount: int, currency: str) -> str:
    """`BRL 1,234.56` (plain: the frontend localises; this is for titles and emails)."""
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exponent) if exponent else (abs(amount), 0)
    text = f"{whole:,}" + (f".{frac:0{exponent}d}" if exponent else "")
    return f"{currency} {sign}{text}"


@dataclass(frozen=True)
class RunPage:
    """What one page of a run's fan-out enqueued."""

    kind: AutomationKind
    date: date
    page: int
    users: int
    more: bool


@dataclass(frozen=True)
class UserRun:
    """One user's share of a run."""

    user_id: str
    kind: AutomationKind
    date: date
    transaction_ids: tuple[str, ...]
    notified: int
    # Recurrences whose occurrences would take a balance out of the safe range.
    refused: tuple[str, ...]

    @property
    def created(self) -> int:
        return len(self.transaction_ids)


@dataclass(frozen=True)
class Created:
    """What one user task created for one recurrence."""

    recurrence: Recurrence
    transactions: list[Transaction]


def _summary_json(row: CurrencySummary) -> dict[str, Any]:
    """One currency's row of the month summary in the notification's data (the shape it has
    always been stored with: the dashboard summary's JSON)."""
    return {
        "currency": row.currency,
        "total_balance": row.total_balance.to_json(),
        "income": row.income.to_json(),
        "expense": row.expense.to_json(),
        "net": row.net.to_json(),
    }


class AutomationService:
    def __init__(
        self,
        automation_store: AutomationStore,
        recurrence_store: RecurrenceStore,
        account_store: AccountStore,
        category_store: CategoryStore,
        clock: Clock,
        queue: TaskQueue,
        notifier: Notifier,
        rules: Callable[[str], RuleSet],
        month_summary: Callable[[str, str], Summary],
        bus: EventBus | None = None,
        page_size: int = FANOUT_PAGE,
        occurrences_per_run: int = OCCURRENCES_PER_RUN,
    ) -> None:
        """`rules` is RuleService.ruleset; `month_summary(user_id, "YYYY-MM")` is
        DashboardService.summary (the numbers the dashboard shows for that month)."""
        self.automation_store = automation_store
        self.recurrence_store = recurrence_store
        self.account_store = account_store
        self.category_store = category_store
        self.clock = clock
        self.queue = queue
        self.notifier = notifier
        self.rules = rules
        self.month_summary = month_summary
        self.bus: EventBus = bus or NullBus()
        self.page_size = page_size
        # Steps of up to auto.CHUNK occurrences per recurrence and run: a backlog past this
        # (a recurrence stored before the start bound, runs missed for a year) is caught up
        # by the next runs, from the watermark, so nothing is created twice or skipped.
        self.max_steps = max(1, -(-occurrences_per_run // auto.CHUNK))

    # --- fan-out ------------------------------------------------------------------------------

    def run(self, kind: AutomationKind, on: date) -> RunPage:
        """The scheduler's call: the first page of the fan-out, inline."""
        return self.fan_out(kind, on, None, 0)

    def fan_out(self, kind: AutomationKind, on: date, cursor: str | None, page: int) -> RunPage:
        if kind is AutomationKind.DAILY:
            found = self.automation_store.users_with_due_recurrences(on, self.page_size, cursor)
        else:
            found = self.automation_store.list_user_ids(self.page_size, cursor)
        day = on.isoformat()
        for user_id in found.items:
            self.queue.enqueue(
                QUEUE,
                FUNCTION,
                USER_PATH,
                {"kind": kind.value, "date": day, "user_id": user_id},
                name=f"auto-{kind.value}-{day}-{user_id}",
            )
        if found.next_cursor is not None:
            self.queue.enqueue(
                QUEUE,
                FUNCTION,
                FANOUT_PATH,
                {"kind": kind.value, "date": day, "cursor": found.next_cursor, "page": page + 1},
                name=f"auto-fanout-{kind.value}-{day}-{page + 1}",
            )
        log.info(
            "automations %s %s page %d: %d users%s",
            kind.value,
            day,
            page,
            len(found.items),
            ", more to come" if found.next_cursor else "",
        )
        return RunPage(kind, on, page, len(found.items), found.next_cursor is not None)

    # --- one user -----------------------------------------------------------------------------

    def run_user(self, user_id: str, kind: AutomationKind, on: date) -> UserRun:
        """One user's share of a run: due occurrences, rules, notifications, and on
        month_start the month summary. Idempotent."""
        created, refused = self.materialize_due(user_id, on)
        notified = sum(self._notify_created(user_id, c) for c in created)
        if kind is AutomationKind.MONTH_START:
            notified += self._notify_month_summary(user_id, previous_month(on))
        run = UserRun(
            user_id=user_id,
            kind=kind,
            date=on,
            transaction_ids=tuple(t.id for c in created for t in c.transactions),
            notified=notified,
            refused=tuple(refused),
        )
        self.automation_store.record_automation_run(
            user_id, f"{kind.value}-{on.isoformat()}", run.created, self.clock.now()
        )
        return run

    def materialize_due(self, user_id: str, on: date) -> tuple[list[Created], list[str]]:
        """What was created, and the ids of the recurrences refused (OutOfSafeRange)."""
        due = self.recurrence_store.due_recurrences(user_id, on)
        if not due:
            return [], []
        accounts = self.account_store.get_accounts(user_id, sorted({r.account_id for r in due}))
        categories = self.category_store.get_categories(
            user_id, sorted({r.category_id for r in due if r.category_id})
        )
        ruleset = self.rules(user_id)
        now = self.clock.now()

        def finish(txn: Transaction) -> Transaction:
            if txn.category_id is not None and txn.category_id not in categories:
                # The recurrence's category was deleted: the occurrence is uncategorized
                # (and the rules may still categorize it).
                txn = replace(txn, category_id=None)
            return ruleset.apply(txn).transaction if ruleset else txn

        def plan(rec: Recurrence) -> auto.Materialization | None:
            live = rec.account_id in accounts
            return auto.plan(rec, on, now=now, create=live, finish=finish)

        out: list[Created] = []
        refused: list[str] = []
        for rec in sorted(due, key=lambda r: r.id):
            made: list[Transaction] = []
            latest: Recurrence | None = None
            for _ in range(self.max_steps):
                try:
                    step = self.recurrence_store.materialize(user_id, rec.id, plan)
                except NotFound:
                    log.warning("recurrence %s: its account is gone; skipped this run", rec.id)
                    break
                except OutOfSafeRange as error:
                    # Not created and the watermark kept: the next run tries again, and
                    # succeeds once the balance has room. Retrying the task would not help.
                    log.error(
                        "recurrence %s of user %s: %s",
                        rec.id,
                        user_id,
                        error.detail,
                        extra={
                            "entry": {
                                "valorize_event": RECURRENCE_REFUSED,
                                "user_id": user_id,
                                "recurrence_id": rec.id,
                            }
                        },
                    )
                    refused.append(rec.id)
                    break
                if step is None:
                    break
                latest, fresh = step
                made.extend(fresh)
                if latest.materialized_through is not None and latest.materialized_through >= on:
                    break
            if made and latest is not None:
                self._announce(user_id, made)
                out.append(Created(latest, made))
        return out, refused

    def _announce(self, user_id: str, made: Sequence[Transaction]) -> None:
        for txn in made:
            self.bus.publish(TransactionCreated(user_id, txn))
        deltas: dict[str, int] = {}
        for t in made:
            deltas[t.account_id] = deltas.get(t.account_id, 0) + t.amount
        # With the deltas, the low-balance alert can tell a crossing from a dip already below.
        self.bus.publish(BalancesChanged(user_id, tuple(deltas), tuple(deltas.items())))

    # --- notifications ------------------------------------------------------------------------

    def _send(self, request: NotificationRequest) -> int:
        try:
            self.notifier.notify(request)
        except Exception:
            log.exception("could not hand notification %s to the notify function", request.id)
            return 0
        return 1

    def _notify_created(self, user_id: str, created: Created) -> int:
        rec, made = created.recurrence, created.transactions
        dates = sorted(t.date for t in made)
        amount = format_money(rec.amount, rec.currency)
        if len(made) == 1:
            body = f"{rec.description}: {amount} on {dates[0].isoformat()}"
        else:
            body = (
                f"{rec.description}: {len(made)} transactions of {amount}, "
                f"{dates[0].isoformat()} to {dates[-1].isoformat()}"
            )
        return self._send(
            NotificationRequest(
                user_id=user_id,
                id=notification_id(
                    "recurrence", rec.id, dates[0].isoformat(), dates[-1].isoformat()
                ),
                kind=NotificationKind.RECURRENCE_CREATED,
                title=f"Recurring transaction created: {rec.description}",
                body=body,
                data={
                    "recurrence_id": rec.id,
                    "account_id": rec.account_id,
                    "transaction_ids": [t.id for t in made][:100],
                    "dates": [d.isoformat() for d in dates][:100],
                    "count": len(made),
                    "amount": {"amount": rec.amount, "currency": rec.currency},
                },
            )
        )

    def _notify_month_summary(self, user_id: str, month: str) -> int:
        try:
            summary = self.month_summary(user_id, month)
        except NotFound:
            return 0  # the user is gone
        rows = [summary, *summary.other_currencies]
        if not any(row.income.amount or row.expense.amount for row in rows):
            return 0  # nothing happened that month: no news
        parts = [
            f"income {format_money(row.income.amount, row.currency)}, "
            f"expenses {format_money(row.expense.amount, row.currency)}, "
            f"net {format_money(row.net.amount, row.currency)}"
            for row in rows
        ]
        return self._send(
            NotificationRequest(
                user_id=user_id,
                id=f"month-summary-{month}",
                kind=NotificationKind.MONTH_SUMMARY,
                title=f"Your {month} summary",
                body="; ".join(parts),
                data={
                    "month": month,
                    "currency": summary.currency,
                    "income": summary.income.to_json(),
                    "expense": summary.expense.to_json(),
                    "net": summary.net.to_json(),
                    "total_balance": summary.total_balance.to_json(),
                    "other_currencies": [_summary_json(row) for row in summary.other_currencies],
                },
            )
        )
