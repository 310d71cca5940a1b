"""Recurrences: CRUD of scheduled transactions (rent, salary, subscriptions). The scheduler's
side (materializing occurrences) is in service/automations.py.

Limits (Settings): a user keeps at most `max_recurrences`, and a start lies at most
`backdate_days` in the past (on create, and on an update that moves it). Without the second,
a daily recurrence from 0001-01-01 would have the scheduler create 740,000 transactions. A
bound on the start rather than only on what one run creates: a backlog the user cannot see
the end of is no use to anyone, and a run's cap alone (service/automations.py still has one)
would keep creating them for years of runs."""

from __future__ import annotations

from datetime import date, timedelta

from valorize.domain import ceilings
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.limits import check_ceiling
from valorize.domain.recurrence import Recurrence
from valorize.service.ports import (
    AccountStore,
    CategoryStore,
    Clock,
    IdempotencyMark,
    Ids,
    PageResult,
    RecurrenceStore,
)
from valorize.service.requests.recurrences import CreateRecurrence, UpdateRecurrence


class RecurrenceService:
    def __init__(
        self,
        recurrence_store: RecurrenceStore,
        account_store: AccountStore,
        category_store: CategoryStore,
        clock: Clock,
        ids: Ids,
        *,
        max_recurrences: int = ceilings.MAX_RECURRENCES,
        backdate_days: int = ceilings.RECURRENCE_BACKDATE_DAYS,
    ) -> None:
        self.max_recurrences = max_recurrences
        self.backdate_days = backdate_days
        self.recurrence_store = recurrence_store
        self.account_store = account_store
        self.category_store = category_store
        self.clock = clock
        self.ids = ids

    def _account_currency(self, user_id: str, account_id: str) -> str:
        account = self.account_store.get_account(user_id, account_id)
        if account is None:
            raise ValidationFailed.on("account_id", "no such account")
        return account.currency

    def _check_category(self, user_id: str, category_id: str | None) -> None:
        if (
            category_id is not None
            and self.category_store.get_category(user_id, category_id) is None
        ):
            raise ValidationFailed.on("category_id", "no such category")

    def _check_start(self, start: date | None) -> None:
        today = self.today()
        earliest = today - timedelta(days=min(self.backdate_days, (today - date.min).days))
        if start is not None and start < earliest:
            raise ValidationFailed.on(
                "start",
                f"at most {self.backdate_days} days in the past (on or after {earliest})",
            )

    def create(
        self, user_id: str, cmd: CreateRecurrence, idem: IdempotencyMark | None = None
    ) -> Recurrence:
        self._check_start(cmd.start)
        held = self.recurrence_store.list_recurrences(user_id, self.max_recurrences, None).items
        check_ceiling("recurrences", len(held), self.max_recurrences)
        currency = self._account_currency(user_id, cmd.account_id)
        self._check_category(user_id, cmd.category_id)
        rec = cmd.to_recurrence(
            recurrence_id=self.ids.new_id(), currency=currency, now=self.clock.now()
        )
        self.recurrence_store.add_recurrence(user_id, rec, idem.seal(rec) if idem else None)
        return rec

    def get(self, user_id: str, recurrence_id: str) -> Recurrence:
        rec = self.recurrence_store.get_recurrence(user_id, recurrence_id)
        if rec is None:
            raise NotFound("recurrence not found")
        return rec

    def list(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Recurrence]:
        return self.recurrence_store.list_recurrences(user_id, limit, cursor)

    def update(self, user_id: str, recurrence_id: str, cmd: UpdateRecurrence) -> Recurrence:
        self._check_start(cmd.start)
        currency = None
        if cmd.account_id is not None:
            currency = self._account_currency(user_id, cmd.account_id)
        self._check_category(user_id, cmd.category_id)
        now = self.clock.now()
        # Occurrences already created stay; the watermark is kept, so a new schedule or start
        # never re-creates past dates (requests/recurrences.py: UpdateRecurrence).
        return self.recurrence_store.update_recurrence(
            user_id, recurrence_id, lambda rec: cmd.apply_to(rec, now=now, currency=currency)
        )

    def delete(self, user_id: str, recurrence_id: str) -> None:
        """The recurrence goes; the transactions it created stay (they are history)."""
        if not self.recurrence_store.delete_recurrence(user_id, recurrence_id):
            raise NotFound("recurrence not found")

    def today(self) -> date:
        return self.clock.now().date()
