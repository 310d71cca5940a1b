"""Rules (a user has at most Settings.max_rules, never over domain.rules.MAX_RULES, read
whole) and on-demand rules runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from valorize.domain.automation import RuleJob, RuleJobPage
from valorize.domain.rules import MAX_RULES, Rule


class RuleStore(Protocol):
    def list_rules(self, user_id: str) -> list[Rule]:
        """Every rule in run order, `position` = its index (domain.rules.numbered)."""
        ...

    def add_rule(
        self, user_id: str, place: Callable[[list[Rule]], Rule], limit: int = MAX_RULES
    ) -> Rule:
        """Create the rule `place` makes from the current ones (it ranks it among them),
        counted against `limit` atomically (domain.limits.LimitReached beyond it)."""
        ...

    def update_rule(
        self, user_id: str, rule_id: str, mutate: Callable[[Rule, list[Rule]], Rule]
    ) -> Rule:
        """Write `mutate(rule, the others in run order)` if the rule did not change since it
        was read (else read again); NotFound when it is gone. Returns it with its position."""
        ...

    def delete_rule(self, user_id: str, rule_id: str) -> bool: ...

    # on-demand runs
    def add_rule_job(self, user_id: str, job: RuleJob) -> None: ...
    def get_rule_job(self, user_id: str, job_id: str) -> RuleJob | None: ...
    def start_rule_job_page(self, user_id: str, job_id: str, page: RuleJobPage) -> RuleJobPage:
        """Record the page unless it is recorded; return the record that stands."""
        ...

    def finish_rule_job_page(self, user_id: str, job_id: str, index: int, now: datetime) -> bool:
        """Mark the page done and add its counts to the job, once: False if it was done."""
        ...
