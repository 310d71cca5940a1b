"""Response shapes of the recurrences function (OpenAPI; handlers render recurrence_out)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from valorize.entrypoints.schemas import ListOf, Out
from valorize.service.requests.recurrences import ScheduleIn


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


RecurrenceList = ListOf[RecurrenceOut]
