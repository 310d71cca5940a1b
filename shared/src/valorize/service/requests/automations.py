"""Bodies of the automate function's endpoints (Cloud Scheduler and Cloud Tasks targets) and of
the rules function's page task. Internal: never called with a user's token."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt, StringConstraints

from valorize.domain import ids
from valorize.domain.automation import AutomationKind
from valorize.domain.errors import ValidationFailed
from valorize.service.requests import Id, RequestModel

Cursor = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


def _transaction_cursor(cursor: str) -> str:
    # Checked here, not when the page runs: a finished job acknowledges any page unread.
    try:
        ids.decode_cursor(cursor, ids.TRANSACTION_CURSOR)
    except ValidationFailed:
        raise ValueError("not a cursor this API returned") from None
    return cursor


class RunAutomations(RequestModel):
    """`{"kind": "daily", "date": "2025-03-01"}` (Cloud Scheduler's body)."""

    kind: AutomationKind
    date: dt.date | None = Field(
        default=None,
        description="The run's day; default: the X-CloudScheduler-ScheduleTime header's UTC "
        "date, else today (UTC)",
    )


class FanOutPage(RequestModel):
    """A follow-up page of a run's fan-out (enqueued by the previous page)."""

    kind: AutomationKind
    date: dt.date
    cursor: Cursor
    page: Annotated[StrictInt, Field(ge=1)]


class UserAutomation(RequestModel):
    """One user's share of a run (task name `auto-<kind>-<date>-<uid>`)."""

    kind: AutomationKind
    date: dt.date
    user_id: Id


class ApplyRulesPage(RequestModel):
    """One page of a `POST /rules/apply` job (task name `rules-apply-<job>-<page>`)."""

    user_id: Id
    job_id: Id
    page: Annotated[StrictInt, Field(ge=0)]
    cursor: Annotated[Cursor, AfterValidator(_transaction_cursor)] | None = None
