"""The AutomationStore port in memory (adapters/firestore/automations.py)."""

from __future__ import annotations

from datetime import date, datetime

from tests.fakes.memory import Memory
from valorize.domain import ids
from valorize.domain.automation import scheduled_next
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.service.ports import PageResult


class InMemoryAutomations:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def users_with_due_recurrences(
        self, on: date, limit: int, cursor: str | None
    ) -> PageResult[str]:
        rows = sorted(
            (str(upcoming), f"users/{uid}/recurrences/{r.id}", uid)
            for uid, space in self.memory.spaces.items()
            for r in space.recurrences.values()
            if (upcoming := scheduled_next(r)) is not None and upcoming <= on
        )
        if cursor:
            after = decode_cursor(cursor, ids.DUE_CURSOR)
            rows = [row for row in rows if f"{row[0]}|{row[1]}" > after]
        page = rows[:limit]
        users = list(dict.fromkeys(uid for _, _, uid in page))
        nxt = encode_cursor(f"{page[-1][0]}|{page[-1][1]}") if len(page) == limit else None
        return PageResult(users, nxt)

    def list_user_ids(self, limit: int, cursor: str | None) -> PageResult[str]:
        users = sorted(uid for uid, space in self.memory.spaces.items() if space.user is not None)
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            users = [i for i in users if i > after]
        page = users[:limit]
        return PageResult(page, encode_cursor(page[-1]) if len(page) == limit else None)

    def record_automation_run(
        self, user_id: str, run_id: str, created: int, when: datetime
    ) -> None:
        runs = self.memory.space(user_id).automation_runs
        entry = runs.setdefault(run_id, {"runs": 0, "created": 0})
        entry["runs"] += 1
        entry["created"] += created
        entry["last_run_at"] = when
