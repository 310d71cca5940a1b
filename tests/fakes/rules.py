"""The RuleStore port in memory (adapters/firestore/rules.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from tests.fakes.memory import AlreadyExists, Memory
from valorize.domain.automation import JobStatus, RuleJob, RuleJobPage
from valorize.domain.errors import NotFound
from valorize.domain.limits import check_ceiling
from valorize.domain.rules import MAX_RULES, Rule, numbered


class InMemoryRules:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def list_rules(self, user_id: str) -> list[Rule]:
        return numbered(self.memory.space(user_id).rules.values())

    def add_rule(
        self, user_id: str, place: Callable[[list[Rule]], Rule], limit: int = MAX_RULES
    ) -> Rule:
        order = self.list_rules(user_id)
        check_ceiling("rules", len(order), limit)
        rule = place(order)
        self.memory.space(user_id).rules[rule.id] = rule
        self.memory.writes += 1
        return next(x for x in self.list_rules(user_id) if x.id == rule.id)

    def update_rule(
        self, user_id: str, rule_id: str, mutate: Callable[[Rule, list[Rule]], Rule]
    ) -> Rule:
        order = self.list_rules(user_id)
        current = next((x for x in order if x.id == rule_id), None)
        if current is None:
            raise NotFound("rule not found")
        new = mutate(current, [x for x in order if x.id != rule_id])
        self.memory.space(user_id).rules[rule_id] = new
        self.memory.writes += 1
        return next(x for x in self.list_rules(user_id) if x.id == rule_id)

    def delete_rule(self, user_id: str, rule_id: str) -> bool:
        self.memory.writes += 1
        return self.memory.space(user_id).rules.pop(rule_id, None) is not None

    # --- on-demand rules runs -----------------------------------------------------------------

    def add_rule_job(self, user_id: str, job: RuleJob) -> None:
        jobs = self.memory.space(user_id).rule_jobs
        if job.id in jobs:
            raise AlreadyExists(f"rule_jobs/{job.id}")
        jobs[job.id] = job
        self.memory.writes += 1

    def get_rule_job(self, user_id: str, job_id: str) -> RuleJob | None:
        return self.memory.space(user_id).rule_jobs.get(job_id)

    def start_rule_job_page(self, user_id: str, job_id: str, page: RuleJobPage) -> RuleJobPage:
        return self.memory.space(user_id).rule_job_pages.setdefault((job_id, page.index), page)

    def finish_rule_job_page(self, user_id: str, job_id: str, index: int, now: datetime) -> bool:
        space = self.memory.space(user_id)
        page = space.rule_job_pages.get((job_id, index))
        if page is None:
            raise NotFound("no such page")
        if page.done:
            return False
        job = space.rule_jobs.get(job_id)
        if job is None:
            raise NotFound("a referenced resource no longer exists")
        last = page.next_cursor is None
        space.rule_job_pages[(job_id, index)] = replace(page, done=True)
        space.rule_jobs[job_id] = replace(
            job,
            processed=job.processed + page.processed,
            changed=job.changed + page.changed,
            pages=job.pages + 1,
            status=JobStatus.DONE if last else JobStatus.RUNNING,
            updated_at=now,
            finished_at=now if last else None,
        )
        self.memory.writes += 1
        return True
