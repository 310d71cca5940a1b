"""Recurrences: scheduled transactions (rent, salary, subscriptions) and their occurrences.
No I/O.

Schedules (every one repeats every `interval` periods, default 1):

* `Monthly(day)`: day N of the month; a month without day N uses its last day (31 -> Apr 30,
  Feb 28/29). Anchored on the month and N, never on the previous date, so Jan 31 -> Feb 28
  -> Mar 31: it never drifts to the 28th.
* `Weekly(weekday)`: that weekday.
* `Yearly(month, day)`: that date each year; Feb 29 falls on Feb 28 in common years.
* `Daily()`: every `interval` days from the start.

The first occurrence is the first scheduled date on or after `start`; later ones follow
every `interval` periods from it (so "quarterly on the 15th, from Jan 20" is Feb 15, May 15,
...). `end`, when given, is the last day an occurrence may fall on.

Exactly once: an occurrence's transaction id is derived from the recurrence and the date
(`occurrence_id`), so creating it twice collides instead of duplicating, and the scheduler
keeps a watermark (`Recurrence.materialized_through`) and asks `due_between(rec, watermark,
today)` for what is due: consecutive windows never overlap and never leave a gap, so running
daily, hourly or after a week's outage materializes the same set of dates.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeAlias

from valorize.domain.errors import ValidationFailed
from valorize.domain.model import Origin, Transaction

MINOR_UNITS_MAX = 2**53 - 1
MAX_DESCRIPTION = 255
MAX_NOTES = 500
MAX_INTERVAL = {"daily": 3660, "weekly": 520, "monthly": 120, "yearly": 100}


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    YEARLY = "yearly"


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """date.weekday(): Monday is 0."""
        return list(Weekday).index(self)

    @classmethod
    def of(cls, d: date) -> Weekday:
        return list(cls)[d.weekday()]


def _check_interval(frequency: Frequency, interval: int) -> None:
    limit = MAX_INTERVAL[frequency.value]
    if isinstance(interval, bool) or not 1 <= interval <= limit:
        raise ValidationFailed.on("interval", f"between 1 and {limit}")


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# Each schedule maps an occurrence number k >= 0 to its date (`nth`), strictly increasing in
# k, and finds the first k on or after a date (`first_index`) without walking from the start.


@dataclass(frozen=True)
class Monthly:
    day: int
    interval: int = 1
    frequency = Frequency.MONTHLY

    def __post_init__(self) -> None:
        if isinstance(self.day, bool) or not 1 <= self.day <= 31:
            raise ValidationFailed.on("day", "between 1 and 31 (31 = the month's last day)")
        _check_interval(self.frequency, self.interval)

    def _base(self, start: date) -> int:
        month = start.year * 12 + start.month - 1
        return month if self._on(month) >= start else month + 1

    def _on(self, month: int) -> date:
        return _clamped(month // 12, month % 12 + 1, self.day)

    def nth(self, start: date, k: int) -> date:
        return self._on(self._base(start) + k * self.interval)

    def first_index(self, start: date, on_or_after: date) -> int:
        month = on_or_after.year * 12 + on_or_after.month - 1
        k = max(0, _ceil_div(month - self._base(start), self.interval))
        return k if self.nth(start, k) >= on_or_after else k + 1


@dataclass(frozen=True)
class Weekly:
    weekday: Weekday
    interval: int = 1
    frequency = Frequency.WEEKLY

    def __post_init__(self) -> None:
        if not isinstance(self.weekday, Weekday):
            raise ValidationFailed.on("weekday", "monday to sunday")
        _check_interval(self.frequency, self.interval)

    def _first(self, start: date) -> date:
        return start + timedelta(days=(self.weekday.number - start.weekday()) % 7)

    def nth(self, start: date, k: int) -> date:
        return self._first(start) + timedelta(days=7 * self.interval * k)

    def first_index(self, start: date, on_or_after: date) -> int:
        return max(0, _ceil_div((on_or_after - self._first(start)).days, 7 * self.interval))


@dataclass(frozen=True)
class Yearly:
    month: int
    day: int
    interval: int = 1
    frequency = Frequency.YEARLY

    def __post_init__(self) -> None:
        if isinstance(self.month, bool) or not 1 <= self.month <= 12:
            raise ValidationFailed.on("month", "between 1 and 12")
        longest = calendar.monthrange(2000, self.month)[1]  # 2000 is leap: Feb has 29
        if isinstance(self.day, bool) or not 1 <= self.day <= longest:
            raise ValidationFailed.on("day", f"between 1 and {longest} for month {self.month}")
        _check_interval(self.frequency, self.interval)

    def _base(self, start: date) -> int:
        year = start.year
        return year if _clamped(year, self.month, self.day) >= start else year + 1

    def nth(self, start: date, k: int) -> date:
        return _clamped(self._base(start) + k * self.interval, self.month, self.day)

    def first_index(self, start: date, on_or_after: date) -> int:
        k = max(0, _ceil_div(on_or_after.year - self._base(start), self.interval))
        return k if self.nth(start, k) >= on_or_after else k + 1


@dataclass(frozen=True)
class Daily:
    interval: int = 1
    frequency = Frequency.DAILY

    def __post_init__(self) -> None:
        _check_interval(self.frequency, self.interval)

    def nth(self, start: date, k: int) -> date:
        return start + timedelta(days=self.interval * k)

    def first_index(self, start: date, on_or_after: date) -> int:
        return max(0, _ceil_div((on_or_after - start).days, self.interval))


Schedule: TypeAlias = Monthly | Weekly | Yearly | Daily


@dataclass(frozen=True)
class Recurrence:
    id: str
    account_id: str
    amount: int
    currency: str
    description: str
    schedule: Schedule
    start: date
    created_at: datetime
    updated_at: datetime
    end: date | None = None
    category_id: str | None = None
    notes: str | None = None
    # The scheduler's watermark: every occurrence up to this day has been materialized (or
    # deliberately skipped). None = nothing yet.
    materialized_through: date | None = None

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValidationFailed.on("amount", "integer minor units")
        if self.amount == 0:
            raise ValidationFailed.on("amount", "a recurring amount cannot be zero")
        if abs(self.amount) > MINOR_UNITS_MAX:
            raise ValidationFailed.on("amount", f"at most {MINOR_UNITS_MAX} in magnitude")
        if not self.description.strip():
            raise ValidationFailed.on("description", "cannot be blank")
        if len(self.description) > MAX_DESCRIPTION:
            raise ValidationFailed.on("description", f"at most {MAX_DESCRIPTION} characters")
        if self.notes is not None and len(self.notes) > MAX_NOTES:
            raise ValidationFailed.on("notes", f"at most {MAX_NOTES} characters")
        if self.end is not None and self.end < self.start:
            raise ValidationFailed.on("end", "cannot be before start")


def _iterate(rec: Recurrence, lo: date) -> Iterator[date]:
    """Occurrences on or after `lo` (and `start`), up to `end`, in order."""
    lo = max(lo, rec.start)
    schedule = rec.schedule
    try:
        k = schedule.first_index(rec.start, lo)
        while True:
            when = schedule.nth(rec.start, k)
            if rec.end is not None and when > rec.end:
                return
            yield when
            k += 1
    except (OverflowError, ValueError):
        # Past year 9999: the calendar ends.
        return


def occurrences(rec: Recurrence, from_date: date, to_date: date) -> list[date]:
    """Every occurrence in [from_date, to_date] (both inclusive), strictly increasing."""
    out: list[date] = []
    for when in _iterate(rec, from_date):
        if when > to_date:
            break
        out.append(when)
    return out


def next_due(rec: Recurrence, after: date) -> date | None:
    """The first occurrence strictly after `after`; None when the recurrence has ended.

    To show "next due" to a user, pass the watermark (materialized_through) or yesterday."""
    if after == date.max:
        return None
    return next(_iterate(rec, after + timedelta(days=1)), None)


def due_between(rec: Recurrence, last_run: date | None, today: date) -> list[date]:
    """The occurrences a run on `today` must materialize when the previous run covered up to
    `last_run` (None: never ran): those in (last_run, today]. Windows that share their
    boundaries partition time, so every occurrence is due in exactly one run."""
    lo = rec.start if last_run is None else last_run + timedelta(days=1)
    if last_run is not None and last_run >= today:
        return []
    return occurrences(rec, lo, today)


def due(rec: Recurrence, today: date) -> list[date]:
    """What the scheduler materializes today: due_between from the recurrence's watermark."""
    return due_between(rec, rec.materialized_through, today)


_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_OCCURRENCE = re.compile(r"^rec-([A-Za-z0-9_-]{1,64})-(\d{8})$")


def occurrence_id(recurrence_id: str, on: date) -> str:
    """The transaction id of the occurrence on `on`: `rec-<recurrence id>-<yyyymmdd>`.
    Deterministic, unique per (recurrence, date), and a valid Firestore document id."""
    if not _ID.match(recurrence_id):
        raise ValueError(f"not a recurrence id: {recurrence_id!r}")
    return f"rec-{recurrence_id}-{on.year:04d}{on.month:02d}{on.day:02d}"


def parse_occurrence_id(transaction_id: str) -> tuple[str, date] | None:
    """(recurrence id, date) of an occurrence's transaction id; None for any other id."""
    found = _OCCURRENCE.match(transaction_id)
    if not found:
        return None
    digits = found.group(2)
    try:
        on = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return found.group(1), on


def materialize(rec: Recurrence, on: date, *, now: datetime) -> Transaction:
    """The transaction of the occurrence on `on` (which must be one), origin RECURRENCE,
    id `occurrence_id(rec.id, on)`. Rules are applied after, like on any new transaction."""
    if occurrences(rec, on, on) != [on]:
        raise ValidationFailed.on("date", f"{on.isoformat()} is not an occurrence of {rec.id}")
    return Transaction(
        id=occurrence_id(rec.id, on),
        account_id=rec.account_id,
        amount=rec.amount,
        currency=rec.currency,
        date=on,
        description=rec.description,
        created_at=now,
        updated_at=now,
        category_id=rec.category_id,
        notes=rec.notes,
        origin=Origin.RECURRENCE,
    )
