"""Response shapes of the automate function (Cloud Scheduler and Cloud Tasks targets)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from valorize.entrypoints.schemas import Out


class RunAcceptedOut(Out):
    kind: str
    date: dt.date
    page: int
    users: int = Field(description="Per-user tasks enqueued by this page")
    more: bool = Field(description="A follow-up fan-out task was enqueued")


class UserRunOut(Out):
    user_id: str
    kind: str
    date: dt.date
    created: int
    transaction_ids: list[str]
    notified: int
