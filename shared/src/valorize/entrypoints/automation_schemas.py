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
    refused: list[str] = Field(
        description="Recurrences not materialized: an occurrence would take a balance or a "
        "sum beyond ±(2^53-1) minor units (logged at ERROR; the next run tries again)"
    )
