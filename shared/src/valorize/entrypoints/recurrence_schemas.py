"""Response shapes of the recurrences function."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from valorize.domain.automation import scheduled_next
from valorize.domain.recurrence import Recurrence
from valorize.entrypoints.schemas import ListOf, Out
from valorize.service.requests.recurrences import ScheduleIn, schedule_in


class RecurrenceOut(Out):
    id: str
    account_id: str
    amount: int = Field(description="Signed minor units: negative = money out")
    currency: str = Field(description="The account's")
    description: str
    category_id: str | None
    notes: str | None
    schedule: ScheduleIn
    start: dt.date
    end: dt.date | None
    next_due: dt.date | None = Field(
        description="The first occurrence not created yet (null: the recurrence has ended)"
    )
    materialized_through: dt.date | None = Field(
        description="Every occurrence up to this day has been created"
    )
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, rec: Recurrence) -> RecurrenceOut:
        return cls.drawn(
            rec,
            schedule=schedule_in(rec.schedule),
            # As the scheduler sees it: after a missed run it may lie in the past until the
            # catch-up creates it.
            next_due=scheduled_next(rec),
        )


RecurrenceList = ListOf[RecurrenceOut]
