"""Firestore documents of rules, recurrences and rules jobs (mapping only, no I/O).

users/{uid}/rules/{id}                 name, rank (order key; positions are derived),
                                       enabled, match, stop, conditions/actions (the
                                       API's JSON shape)
users/{uid}/settings/rules             count (of rules: holds MAX_RULES without a read)
users/{uid}/recurrences/{id}           the API's fields, schedule JSON, start/end,
                                       materialized_through and next_due ("YYYY-MM-DD" or
                                       null: the scheduler's collection-group query)
users/{uid}/rule_jobs/{id}             params (ApplyRules JSON), status, processed,
                                       changed, pages
users/{uid}/rule_jobs/{id}/pages/{n}   cursor, next_cursor, processed, changed, done
users/{uid}/automation_runs/{kind-date}  runs, created, last_run_at (a run log)
"""

from __future__ import annotations

from datetime import date
from typing import Any

from valorize.domain import rules as r
from valorize.domain.automation import JobStatus, RuleJob, RuleJobPage, scheduled_next
from valorize.domain.recurrence import Recurrence


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def rule_doc(rule: r.Rule) -> dict[str, Any]:
    from valorize.service.rule_commands import action_json, condition_json

    return {
        "name": rule.name,
        "rank": rule.rank,
        "enabled": rule.enabled,
        "match": rule.match.value,
        "stop": rule.stop,
        "conditions": [condition_json(c) for c in rule.conditions],
        "actions": [action_json(a) for a in rule.actions],
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


def rule_of(doc_id: str, d: dict[str, Any]) -> r.Rule:
    from valorize.service.rule_commands import actions_from_json, conditions_from_json

    return r.Rule(
        id=doc_id,
        name=d["name"],
        # Derived from the order of all of them (domain.rules.numbered).
        position=0,
        rank=d["rank"],
        conditions=conditions_from_json(d["conditions"]),
        actions=actions_from_json(d["actions"]),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        enabled=bool(d.get("enabled", True)),
        match=r.Match(d.get("match", "all")),
        stop=bool(d.get("stop", False)),
    )


def recurrence_doc(rec: Recurrence) -> dict[str, Any]:
    from valorize.service.recurrence_commands import schedule_json

    return {
        "account_id": rec.account_id,
        "amount": rec.amount,
        "currency": rec.currency,
        "description": rec.description,
        "category_id": rec.category_id,
        "notes": rec.notes,
        "schedule": schedule_json(rec.schedule),
        "start": rec.start.isoformat(),
        "end": _iso(rec.end),
        "materialized_through": _iso(rec.materialized_through),
        # Denormalised for the scheduler: derived from the fields above on every write.
        "next_due": _iso(scheduled_next(rec)),
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    }


def recurrence_of(doc_id: str, d: dict[str, Any]) -> Recurrence:
    from valorize.service.recurrence_commands import schedule_from_json

    start = _day(d["start"])
    assert start is not None
    return Recurrence(
        id=doc_id,
        account_id=d["account_id"],
        amount=int(d["amount"]),
        currency=d["currency"],
        description=d["description"],
        schedule=schedule_from_json(d["schedule"]),
        start=start,
        end=_day(d.get("end")),
        category_id=d.get("category_id"),
        notes=d.get("notes"),
        materialized_through=_day(d.get("materialized_through")),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def job_doc(job: RuleJob) -> dict[str, Any]:
    return {
        "params": job.params,
        "status": job.status.value,
        "processed": job.processed,
        "changed": job.changed,
        "pages": job.pages,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
    }


def job_of(doc_id: str, d: dict[str, Any]) -> RuleJob:
    return RuleJob(
        id=doc_id,
        params=dict(d.get("params") or {}),
        status=JobStatus(d.get("status", "queued")),
        processed=int(d.get("processed", 0)),
        changed=int(d.get("changed", 0)),
        pages=int(d.get("pages", 0)),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        finished_at=d.get("finished_at"),
    )


def page_doc(page: RuleJobPage) -> dict[str, Any]:
    return {
        "index": page.index,
        "cursor": page.cursor,
        "next_cursor": page.next_cursor,
        "processed": page.processed,
        "changed": page.changed,
        "done": page.done,
    }


def page_of(d: dict[str, Any]) -> RuleJobPage:
    return RuleJobPage(
        index=int(d["index"]),
        cursor=d.get("cursor"),
        next_cursor=d.get("next_cursor"),
        processed=int(d.get("processed", 0)),
        changed=int(d.get("changed", 0)),
        done=bool(d.get("done", False)),
    )
