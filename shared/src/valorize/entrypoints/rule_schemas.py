"""Response shapes of the rules function."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from valorize.domain.automation import RuleJob
from valorize.domain.rules import Match, Rule
from valorize.entrypoints.schemas import ListOf, Out
from valorize.service.requests.rules import ActionIn, ConditionIn, actions_in, conditions_in
from valorize.service.rules import PageOutcome, PageSkipped


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

    @classmethod
    def of(cls, rule: Rule) -> RuleOut:
        # Conditions and actions in the shape they are written (an omitted bound stays out).
        return cls.drawn(
            rule,
            conditions=conditions_in(rule.conditions),
            actions=actions_in(rule.actions),
        )


RuleList = ListOf[RuleOut]


class ApplyAcceptedOut(Out):
    id: str = Field(description="The job: GET /api/rules/apply/{id}")
    status: str

    @classmethod
    def of(cls, job: RuleJob) -> ApplyAcceptedOut:
        return cls(id=job.id, status=job.status.value)


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
        return cls.drawn(job, status=job.status.value, filters=job.params)


class ApplyPageOut(Out):
    job_id: str
    page: int
    processed: int | None = None
    changed: int | None = None
    last: bool | None = None
    skipped: bool | None = None

    @classmethod
    def of(cls, outcome: PageOutcome) -> ApplyPageOut:
        # A skipped page leaves its counts out (unset fields are not rendered), and a page
        # that ran leaves out `skipped`.
        if isinstance(outcome, PageSkipped):
            return cls(job_id=outcome.job_id, page=outcome.page, skipped=True)
        return cls(
            job_id=outcome.job_id,
            page=outcome.page,
            processed=outcome.processed,
            changed=outcome.changed,
            last=outcome.last,
        )
