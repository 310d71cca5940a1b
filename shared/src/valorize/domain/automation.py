"""Automations without I/O: what the scheduler materializes for a recurrence in one step,
and the records of an on-demand rules run (a job and its pages).

Exactly once, end to end: an occurrence's transaction id is `occurrence_id(recurrence, date)`,
the store creates only the ids that do not exist yet, and the recurrence's watermark
(`materialized_through`) and denormalised `next_due` move in the same Firestore transaction
as the transactions they account for. A redelivered task, a second scheduler run for the
same day or two tasks racing for one user therefore create nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from valorize.domain.model import Transaction
from valorize.domain.recurrence import Recurrence, materialize, next_due, occurrences

# Occurrences created per Firestore transaction (each also writes its month read models, the
# account and the recurrence: well under the 500-write limit).
CHUNK = 100


def scheduled_next(rec: Recurrence) -> date | None:
    """The first occurrence not materialized yet, whatever today is (None: ended). This is
    the `next_due` the store keeps for the scheduler's query and the API shows: after a
    missed run it can be in the past, until the catch-up creates it."""
    if rec.materialized_through is not None:
        return next_due(rec, rec.materialized_through)
    try:
        before_start = rec.start - timedelta(days=1)
    except OverflowError:  # start on 0001-01-01
        return rec.start if occurrences(rec, rec.start, rec.start) else next_due(rec, rec.start)
    return next_due(rec, before_start)


def due_dates(rec: Recurrence, today: date, limit: int = CHUNK) -> list[date]:
    """Up to `limit` occurrences not materialized yet, on or before `today`, in order."""
    out: list[date] = []
    upcoming = scheduled_next(rec)
    while upcoming is not None and upcoming <= today and len(out) < limit:
        out.append(upcoming)
        upcoming = next_due(rec, upcoming)
    return out


@dataclass(frozen=True)
class Materialization:
    """One step of a recurrence: the transactions to create (the store skips ids that exist)
    and the recurrence with its new watermark."""

    recurrence: Recurrence
    transactions: tuple[Transaction, ...]
    # The run's day: caught up once the watermark reaches it.
    today: date

    @property
    def caught_up(self) -> bool:
        watermark = self.recurrence.materialized_through
        return watermark is not None and watermark >= self.today


def plan(
    rec: Recurrence,
    today: date,
    *,
    now: datetime,
    create: bool = True,
    finish: Callable[[Transaction], Transaction] = lambda t: t,
    limit: int = CHUNK,
) -> Materialization | None:
    """The next step for `rec` on a run for `today`, or None when nothing is due.

    `create=False` moves the watermark without creating anything (the account is gone: its
    occurrences are skipped, not queued forever). `finish` post-processes each new
    transaction (the rules). When more than `limit` occurrences are due, the watermark
    stops at the last one created and the caller takes another step."""
    dates = due_dates(rec, today, limit)
    if not dates:
        return None
    watermark = today if len(dates) < limit else dates[-1]
    if rec.materialized_through is not None:
        watermark = max(watermark, rec.materialized_through)
    made = tuple(finish(materialize(rec, d, now=now)) for d in dates) if create else ()
    moved = replace(rec, materialized_through=watermark)
    return Materialization(moved, made, today)


class AutomationKind(StrEnum):
    """What Cloud Scheduler triggers: `daily` materializes due occurrences; `month_start`
    does the same for every user and sends each the summary of the month that ended."""

    DAILY = "daily"
    MONTH_START = "month_start"


# --- on-demand rules runs ---------------------------------------------------------------------


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True)
class RuleJob:
    """A `POST /rules/apply`: its filters (the ApplyRules JSON) and its running counts."""

    id: str
    params: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status: JobStatus = JobStatus.QUEUED
    processed: int = 0
    changed: int = 0
    pages: int = 0
    finished_at: datetime | None = None


@dataclass(frozen=True)
class RuleJobPage:
    """One page of a job, recorded before its writes (its counts are fixed then) and marked
    done after; the job counts a page once, when it is marked done."""

    index: int
    cursor: str | None
    next_cursor: str | None
    processed: int
    changed: int
    done: bool = False
