"""Response shapes of the rules function (OpenAPI; handlers render rule_json's JSON)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from valorize.domain.automation import RuleJob
from valorize.domain.rules import Match
from valorize.entrypoints.schemas import ListOf, Out
from valorize.service.requests.rules import ActionIn, ConditionIn


class RuleOut(Out):
    id: str
    name: str
    position: int = Field(description="Run order, ascending, dense from 0")
    enabled: bool
    match: Match
    stop: bool = Field(description="When it matches, the later rules are skipped")
    conditions: list[ConditionIn]
    actions: list[ActionIn]
    created_at: dt.datetime
    updated_at: dt.datetime


RuleList = ListOf[RuleOut]


class ApplyAcceptedOut(Out):
    id: str = Field(description="The job: GET /api/rules/apply/{id}")
    status: str


class ApplyJobOut(Out):
    id: str
    status: str = Field(description="queued, running or done")
    processed: int = Field(description="Transactions looked at so far")
    changed: int = Field(description="Transactions the rules changed so far")
    pages: int
    filters: dict[str, Any] = Field(description="The request's filters")
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, job: RuleJob) -> ApplyJobOut:
        return cls(
            id=job.id,
            status=job.status.value,
            processed=job.processed,
            changed=job.changed,
            pages=job.pages,
            filters=job.params,
            created_at=job.created_at,
            updated_at=job.updated_at,
            finished_at=job.finished_at,
        )


class ApplyPageOut(Out):
    job_id: str
    page: int
    processed: int | None = None
    changed: int | None = None
    last: bool | None = None
    skipped: bool | None = None
