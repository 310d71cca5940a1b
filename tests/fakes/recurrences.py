"""The RecurrenceStore port in memory (adapters/firestore/recurrences.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

from tests.fakes.memory import AlreadyExists, Memory
from valorize.domain import ids
from valorize.domain.automation import Materialization, scheduled_next
from valorize.domain.errors import NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.model import Transaction
from valorize.domain.recurrence import Recurrence
from valorize.service.ports import IdempotencyRecord, PageResult


class InMemoryRecurrences:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def add_recurrence(
        self, user_id: str, recurrence: Recurrence, idem: IdempotencyRecord | None = None
    ) -> None:
        self.memory.check_idem(user_id, idem)
        recurrences = self.memory.space(user_id).recurrences
        if recurrence.id in recurrences:
            raise AlreadyExists(f"recurrences/{recurrence.id}")
        recurrences[recurrence.id] = recurrence
        self.memory.save_idem(user_id, idem)
        self.memory.writes += 1

    def get_recurrence(self, user_id: str, recurrence_id: str) -> Recurrence | None:
        return self.memory.space(user_id).recurrences.get(recurrence_id)

    def list_recurrences(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Recurrence]:
        rows = sorted(self.memory.space(user_id).recurrences.values(), key=lambda r: r.id)
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            rows = [r for r in rows if r.id > after]
        page = rows[: limit + 1]
        items = page[:limit]
        return PageResult(items, encode_cursor(items[-1].id) if len(page) > limit else None)

    def update_recurrence(
        self, user_id: str, recurrence_id: str, mutate: Callable[[Recurrence], Recurrence]
    ) -> Recurrence:
        recurrences = self.memory.space(user_id).recurrences
        old = recurrences.get(recurrence_id)
        if old is None:
            raise NotFound("recurrence not found")
        new = mutate(old)
        recurrences[recurrence_id] = new
        self.memory.writes += 1
        return new

    def delete_recurrence(self, user_id: str, recurrence_id: str) -> bool:
        found = self.memory.space(user_id).recurrences.pop(recurrence_id, None) is not None
        self.memory.writes += found
        return found

    def due_recurrences(self, user_id: str, on: date) -> list[Recurrence]:
        return [
            r
            for r in self.memory.space(user_id).recurrences.values()
            if (upcoming := scheduled_next(r)) is not None and upcoming <= on
        ]

    def materialize(
        self,
        user_id: str,
        recurrence_id: str,
        plan: Callable[[Recurrence], Materialization | None],
    ) -> tuple[Recurrence, list[Transaction]] | None:
        space = self.memory.space(user_id)
        rec = space.recurrences.get(recurrence_id)
        if rec is None:
            return None
        step = plan(rec)
        if step is None:
            return None
        fresh = [t for t in step.transactions if t.id not in space.transactions]
        self.memory.post(user_id, [], fresh, missing="the recurrence's account no longer exists")
        # Only the scheduler's fields: a concurrent edit of the rest is kept.
        space.recurrences[recurrence_id] = replace(
            rec, materialized_through=step.recurrence.materialized_through
        )
        return step.recurrence, fresh
