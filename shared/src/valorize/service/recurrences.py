"""Recurrences: CRUD of scheduled transactions (rent, salary, subscriptions). The scheduler's
side (materializing occurrences) is in service/automations.py."""

from __future__ import annotations

from datetime import date

from valorize.domain.errors import NotFound, ValidationFailed
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
    ) -> None:
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

    def create(
        self, user_id: str, cmd: CreateRecurrence, idem: IdempotencyMark | None = None
    ) -> Recurrence:
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
        given = cmd.given()
        for required in ("account_id", "amount", "description", "schedule", "start"):
            if required in given and given[required] is None:
                raise ValidationFailed.on(required, "cannot be null")
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
