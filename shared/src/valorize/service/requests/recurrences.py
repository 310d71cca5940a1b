"""Recurrence requests: the request bodies of the recurrences API, and the JSON shape of a
schedule (the same shape is returned and stored).

A recurrence::

    {
      "account_id": "<account id>",
      "amount": -150000,                   # signed minor units: negative = money out
      "description": "Rent",
      "category_id": "<category id>",      # optional
      "notes": null,                       # optional
      "schedule": {"frequency": "monthly", "day": 31},
      "start": "2025-01-31",
      "end": null                          # optional, inclusive
    }

Schedules, discriminated by `frequency`; `interval` (default 1) repeats every N periods:

* `{"frequency": "monthly", "day": 31}`: day 1-31; shorter months use their last day
  (Jan 31, Feb 28/29, Mar 31, Apr 30...). `"interval": 3` = quarterly.
* `{"frequency": "weekly", "weekday": "friday", "interval": 2}`: every other Friday.
* `{"frequency": "yearly", "month": 2, "day": 29}`: Feb 28 in common years.
* `{"frequency": "daily", "interval": 10}`: every 10 days from the start.

The first occurrence is the first scheduled date on or after `start`. Responses add the
recurrence's `id`, `currency` (the account's), `next_due` and timestamps."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, TypeAdapter

from valorize.domain import recurrence as rc
from valorize.domain.errors import FieldError, ValidationFailed
from valorize.service.requests import Description, Id, MinorUnits, RequestModel, Text


def _nested(prefix: str, err: ValidationFailed) -> ValidationFailed:
    # As requests/rules.py: nested; not imported from there so the recurrences function does not
    # load the rule models at cold start.
    fields = [FieldError(f"{prefix}.{e.field}", e.message) for e in err.errors] or [
        FieldError(prefix, err.detail)
    ]
    return ValidationFailed("; ".join(f"{f.field}: {f.message}" for f in fields), fields)


def _interval(limit: int) -> Any:
    return Field(default=1, ge=1, le=limit, description="Every N periods")


class MonthlyIn(RequestModel):
    """`{"frequency": "monthly", "day": 31, "interval": 1}`"""

    frequency: Literal["monthly"]
    day: Annotated[StrictInt, Field(ge=1, le=31, description="31 = the month's last day")]
    interval: StrictInt = _interval(rc.MAX_INTERVAL["monthly"])

    def to_domain(self) -> rc.Schedule:
        return rc.Monthly(self.day, self.interval)


class WeeklyIn(RequestModel):
    """`{"frequency": "weekly", "weekday": "friday", "interval": 2}`"""

    frequency: Literal["weekly"]
    weekday: rc.Weekday
    interval: StrictInt = _interval(rc.MAX_INTERVAL["weekly"])

    def to_domain(self) -> rc.Schedule:
        return rc.Weekly(self.weekday, self.interval)


class YearlyIn(RequestModel):
    """`{"frequency": "yearly", "month": 2, "day": 29}` (Feb 28 in common years)"""

    frequency: Literal["yearly"]
    month: Annotated[StrictInt, Field(ge=1, le=12)]
    day: Annotated[StrictInt, Field(ge=1, le=31)]
    interval: StrictInt = _interval(rc.MAX_INTERVAL["yearly"])

    def to_domain(self) -> rc.Schedule:
        return rc.Yearly(self.month, self.day, self.interval)


class DailyIn(RequestModel):
    """`{"frequency": "daily", "interval": 10}`: every 10 days from the start"""

    frequency: Literal["daily"]
    interval: StrictInt = _interval(rc.MAX_INTERVAL["daily"])

    def to_domain(self) -> rc.Schedule:
        return rc.Daily(self.interval)


ScheduleIn = Annotated[MonthlyIn | WeeklyIn | YearlyIn | DailyIn, Field(discriminator="frequency")]
NonZeroMinorUnits = Annotated[MinorUnits, Field(description="Signed minor units, not zero")]


def schedule_of(s: MonthlyIn | WeeklyIn | YearlyIn | DailyIn) -> rc.Schedule:
    """The domain schedule; errors name `schedule.<field>` (Apr 31 -> `schedule.day`)."""
    try:
        return s.to_domain()
    except ValidationFailed as e:
        raise _nested("schedule", e) from None


class CreateRecurrence(RequestModel):
    account_id: Id
    amount: NonZeroMinorUnits
    description: Description
    schedule: ScheduleIn
    start: dt.date = Field(
        description="The first occurrence is on or after this day; at most ten years back "
        '(Settings.recurrence_backdate_days, README "Limits")'
    )
    end: dt.date | None = Field(default=None, description="Last day an occurrence may fall on")
    category_id: Id | None = None
    notes: Text | None = None

    def to_recurrence(
        self, *, recurrence_id: str, currency: str, now: dt.datetime
    ) -> rc.Recurrence:
        """The domain recurrence; `currency` is the account's (the service looks it up)."""
        return rc.Recurrence(
            id=recurrence_id,
            account_id=self.account_id,
            amount=self.amount,
            currency=currency,
            description=self.description,
            schedule=schedule_of(self.schedule),
            start=self.start,
            end=self.end,
            category_id=self.category_id,
            notes=self.notes,
            created_at=now,
            updated_at=now,
        )


_CLEARABLE = frozenset({"end", "category_id", "notes"})


class UpdateRecurrence(RequestModel):
    """PATCH: absent fields are unchanged; `null` clears `end`, `category_id` and `notes`.
    A new `schedule` replaces the old one. Occurrences already materialized stay (the
    watermark is kept): changing the schedule or start never re-creates past dates."""

    NOT_NULL = ("account_id", "amount", "description", "schedule", "start")
    account_id: Id | None = None
    amount: NonZeroMinorUnits | None = None
    description: Description | None = None
    schedule: ScheduleIn | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    category_id: Id | None = None
    notes: Text | None = None

    def apply_to(
        self, rec: rc.Recurrence, *, now: dt.datetime, currency: str | None = None
    ) -> rc.Recurrence:
        """The recurrence with these changes, validated again (end >= start...). Pass the new
        account's `currency` when `account_id` changes."""
        changes = {k: v for k, v in self.given().items() if v is not None or k in _CLEARABLE}
        if "schedule" in changes:
            changes["schedule"] = schedule_of(changes["schedule"])
        if currency is not None:
            changes["currency"] = currency
        return replace(rec, **changes, updated_at=now)


# --- the stored / returned shape --------------------------------------------------------------


def schedule_json(s: rc.Schedule) -> dict[str, Any]:
    """The public JSON of a schedule (what the API returns; the store has its own codec,
    adapters/firestore/rule_documents.py)."""
    if isinstance(s, rc.Monthly):
        return {"frequency": "monthly", "day": s.day, "interval": s.interval}
    if isinstance(s, rc.Weekly):
        return {"frequency": "weekly", "weekday": s.weekday.value, "interval": s.interval}
    if isinstance(s, rc.Yearly):
        return {"frequency": "yearly", "month": s.month, "day": s.day, "interval": s.interval}
    return {"frequency": "daily", "interval": s.interval}


@cache
def _schedule() -> TypeAdapter[MonthlyIn | WeeklyIn | YearlyIn | DailyIn]:
    # Built on first use, not at import: cold start.
    return TypeAdapter(ScheduleIn)


def schedule_in(s: rc.Schedule) -> MonthlyIn | WeeklyIn | YearlyIn | DailyIn:
    """A domain schedule as the request model that writes it (what the API shows)."""
    return _schedule().validate_python(schedule_json(s), strict=False)
