"""Recurrences (scheduled transactions) and their occurrences."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Protocol

from valorize.domain.automation import Materialization
from valorize.domain.model import Transaction
from valorize.domain.recurrence import Recurrence
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult


class RecurrenceStore(Protocol):
    def add_recurrence(
        self, user_id: str, recurrence: Recurrence, idem: IdempotencyRecord | None = None
    ) -> None: ...
    def get_recurrence(self, user_id: str, recurrence_id: str) -> Recurrence | None: ...
    def list_recurrences(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Recurrence]:
        """By id."""
        ...

    def update_recurrence(
        self, user_id: str, recurrence_id: str, mutate: Callable[[Recurrence], Recurrence]
    ) -> Recurrence:
        """Write `mutate(recurrence)` if it did not change since it was read (else read
        again); NotFound when it is gone."""
        ...

    def delete_recurrence(self, user_id: str, recurrence_id: str) -> bool: ...
    def due_recurrences(self, user_id: str, on: date) -> list[Recurrence]:
        """The user's recurrences whose next occurrence is on or before `on`."""
        ...

    def materialize(
        self,
        user_id: str,
        recurrence_id: str,
        plan: Callable[[Recurrence], Materialization | None],
    ) -> tuple[Recurrence, list[Transaction]] | None:
        """Atomically (re-run if a concurrent run got there first): read the recurrence, ask
        `plan` for a step, create the step's transactions whose ids do not exist yet (a
        ledger write: balances and read models, within the money limits) and store the
        recurrence's new watermark. Returns (recurrence, created), None when the recurrence
        is gone or nothing was due; NotFound when the account is gone."""
        ...
