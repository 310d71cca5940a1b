"""What the scheduler's fan-out reads across users, and its run log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

from valorize.service.ports.pages import PageResult


class AutomationStore(Protocol):
    def users_with_due_recurrences(
        self, on: date, limit: int, cursor: str | None
    ) -> PageResult[str]:
        """User ids owning a recurrence due on or before `on` (a page of `limit`
        recurrences at a time, in due order; ids may repeat across pages)."""
        ...

    def list_user_ids(self, limit: int, cursor: str | None) -> PageResult[str]:
        """Every user id, in order."""
        ...

    def record_automation_run(
        self, user_id: str, run_id: str, created: int, when: datetime
    ) -> None:
        """Count a run of `run_id` for the user and what it created."""
        ...
