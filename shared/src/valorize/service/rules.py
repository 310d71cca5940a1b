"""Rules: CRUD of a user's ordered rules, the rule set every new transaction goes through, and
on-demand runs over existing transactions (a job, one Cloud Task per page).

Ordering: positions are dense (0, 1, 2...) in run order. Creating a rule at `position` p (or
moving one there with PATCH) puts it at index p, clamped to the end, and the rules from p on
follow it; deleting one closes the gap. Positions are derived from each rule's stored rank
(domain.rules.placed), so a create writes only the new rule (and one counter increment that
holds the limit, Settings.max_rules) and a move only the moved rule: rules created in
parallel do not queue behind one another.

The rule set every new transaction goes through spends at most `budget` seconds of CPU on
one transaction (domain.rules.RuleSet); rules it had no time for are skipped, and each such
transaction is logged at ERROR with the marker `valorize_event: rules_skipped` (a log-based
metric counts them) naming the user, the transaction and the rules skipped; the
transaction's notes say so (domain.rules.SKIPPED_NOTE). It is written with what the rules
before them did: refusing the write would let one user's rules make their own writes fail,
and waiting longer is what the budget stops.

On-demand runs (`POST /rules/apply`): the job is stored, then its first page task is enqueued
on the rules function's internal endpoint. Each page task lists up to PAGE transactions of
the filters from its cursor, records the page (its counts and the next cursor) before writing,
writes only the transactions the rules change (each through the normal atomic update, so
balances, read models, cache and live events follow), marks the page done (which adds its
counts to the job exactly once) and enqueues the next page under a deterministic task name.
A redelivered page reuses its record: nothing is counted twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from valorize.domain import ids
from valorize.domain import rules as r
from valorize.domain.automation import JobStatus, RuleJob, RuleJobPage
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.model import Transaction
from valorize.service.ports import (
    AccountStore,
    CategoryStore,
    Clock,
    Ids,
    Ledger,
    PageResult,
    RuleStore,
    TaskQueue,
    TransactionFilter,
)
from valorize.service.requests.rules import ApplyRules, CreateRule, UpdateRule

log = logging.getLogger(__name__)

# Transactions per page task: each changed one is its own atomic update.
PAGE = 100
# The marker the log-based metric of skipped rules filters on.
RULES_SKIPPED = "rules_skipped"

APPLY_QUEUE = "automations"
APPLY_FUNCTION = "rules"
APPLY_PATH = "/api/rules/apply/run"


@dataclass(frozen=True)
class PageRan:
    """A page task's answer: what its page counted, and whether it was the job's last."""

    job_id: str
    page: int
    processed: int
    changed: int
    last: bool


@dataclass(frozen=True)
class PageSkipped:
    """A page task's answer when its job is unknown or done: acknowledged, nothing counted."""

    job_id: str
    page: int


PageOutcome = PageRan | PageSkipped


class RuleService:
    def __init__(
        self,
        rule_store: RuleStore,
        account_store: AccountStore,
        category_store: CategoryStore,
        ledger: Ledger,
        clock: Clock,
        ids: Ids,
        queue: TaskQueue | None = None,
        apply_rules: Callable[[str, str, r.RuleSet], Transaction | None] | None = None,
        *,
        max_rules: int = r.MAX_RULES,
        budget: float = r.RULES_BUDGET_SECONDS,
    ) -> None:
        """`queue` runs on-demand jobs; `apply_rules` is TransactionService.apply_rules (the
        normal update path). Both are only needed by the rules function. `max_rules`: rules
        per user; `budget`: CPU seconds the rules may spend on one transaction."""
        self.rule_store = rule_store
        self.account_store = account_store
        self.category_store = category_store
        self.ledger = ledger
        self.clock = clock
        self.ids = ids
        self.queue = queue
        self._apply_rules = apply_rules
        self.max_rules = max_rules
        self.budget = budget

    # --- references ---------------------------------------------------------------------------

    def _check_references(self, user_id: str, rule: r.Rule) -> None:
        """set_category and account conditions name the caller's own category and accounts;
        another user's is "no such" (422 naming the JSON path)."""
        categories = [
            (i, a.category_id) for i, a in enumerate(rule.actions) if isinstance(a, r.SetCategory)
        ]
        if categories:
            found = self.category_store.get_categories(user_id, [c for _, c in categories])
            for i, category_id in categories:
                if category_id not in found:
                    raise ValidationFailed.on(f"actions.{i}.value", "no such category")
        accounts = [
            (i, c.account_ids) for i, c in enumerate(rule.conditions) if isinstance(c, r.AccountIn)
        ]
        wanted = sorted({a for _, ids in accounts for a in ids})
        if wanted:
            found_accounts = self.account_store.get_accounts(user_id, wanted)
            for i, ids in accounts:
                missing = sorted(a for a in ids if a not in found_accounts)
                if missing:
                    raise ValidationFailed.on(
                        f"conditions.{i}.value", f"no such account: {', '.join(missing)}"
                    )

    # --- CRUD ---------------------------------------------------------------------------------

    def list(self, user_id: str, limit: int, cursor: str | None) -> PageResult[r.Rule]:
        """Every rule (enabled or not) in run order, a page at a time."""
        rules = self.rule_store.list_rules(user_id)
        if cursor:
            after = decode_cursor(cursor, ids.RULE_CURSOR)
            rules = [x for x in rules if f"{x.position:07d}#{x.id}" > after]
        page = rules[:limit]
        more = len(rules) > limit
        return PageResult(
            page, encode_cursor(f"{page[-1].position:07d}#{page[-1].id}") if more else None
        )

    def get(self, user_id: str, rule_id: str) -> r.Rule:
        # Its position is its index among all of them.
        rule = next((x for x in self.rule_store.list_rules(user_id) if x.id == rule_id), None)
        if rule is None:
            raise NotFound("rule not found")
        return rule

    def create(self, user_id: str, cmd: CreateRule) -> r.Rule:
        now = self.clock.now()
        # Validated (regexes compile, actions make sense) before anything is read.
        rule = cmd.to_rule(rule_id=self.ids.new_id(), now=now)
        self._check_references(user_id, rule)
        return self.rule_store.add_rule(
            user_id, lambda order: r.placed(rule, order, cmd.position), self.max_rules
        )

    def update(self, user_id: str, rule_id: str, cmd: UpdateRule) -> r.Rule:
        now = self.clock.now()
        if cmd.conditions is not None or cmd.actions is not None:
            self._check_references(user_id, cmd.apply_to(self.get(user_id, rule_id), now=now))

        def mutate(stored: r.Rule, others: list[r.Rule]) -> r.Rule:
            new = cmd.apply_to(stored, now=now)
            return new if cmd.position is None else r.placed(new, others, cmd.position)

        return self.rule_store.update_rule(user_id, rule_id, mutate)

    def delete(self, user_id: str, rule_id: str) -> None:
        if not self.rule_store.delete_rule(user_id, rule_id):
            raise NotFound("rule not found")

    # --- the rule set -------------------------------------------------------------------------

    def ruleset(self, user_id: str, only: Sequence[str] | None = None) -> r.RuleSet:
        """The user's enabled rules, ready to apply to new transactions (manual create,
        recurrence occurrences, import commits). `only` keeps those ids (in run order).

        A set_category whose category was deleted since is dropped from its rule (the rule's
        other actions still run), so no transaction is ever pointed at a missing category."""
        rules = [x for x in self.rule_store.list_rules(user_id) if x.enabled]
        if only is not None:
            keep = set(only)
            rules = [x for x in rules if x.id in keep]
        wanted = sorted(
            {a.category_id for x in rules for a in x.actions if isinstance(a, r.SetCategory)}
        )
        if wanted:
            alive = self.category_store.get_categories(user_id, wanted)
            pruned = []
            for x in rules:
                actions = tuple(
                    a
                    for a in x.actions
                    if not isinstance(a, r.SetCategory) or a.category_id in alive
                )
                if actions != x.actions:
                    if not actions:
                        continue
                    x = replace(x, actions=actions)
                pruned.append(x)
            rules = pruned
        return r.RuleSet(
            rules, budget=self.budget, on_skipped=lambda outcome: _log_skipped(user_id, outcome)
        )

    # --- on-demand runs -----------------------------------------------------------------------

    def start_apply(self, user_id: str, cmd: ApplyRules) -> RuleJob:
        cmd.check()
        if (
            cmd.account_id is not None
            and self.account_store.get_account(user_id, cmd.account_id) is None
        ):
            raise ValidationFailed.on("account_id", "no such account")
        if cmd.rule_ids is not None:
            known = {x.id for x in self.rule_store.list_rules(user_id)}
            for i, rule_id in enumerate(cmd.rule_ids):
                if rule_id not in known:
                    raise ValidationFailed.on(f"rule_ids.{i}", "no such rule")
        if self.queue is None:
            raise RuntimeError("RuleService needs a task queue to run jobs")
        now = self.clock.now()
        job = RuleJob(
            id=self.ids.new_id(),
            params=cmd.model_dump(mode="json", by_alias=True, exclude_none=True),
            created_at=now,
            updated_at=now,
        )
        self.rule_store.add_rule_job(user_id, job)
        self._enqueue_page(user_id, job.id, 0, None)
        return job

    def job(self, user_id: str, job_id: str) -> RuleJob:
        job = self.rule_store.get_rule_job(user_id, job_id)
        if job is None:
            raise NotFound("rules job not found")
        return job

    def _enqueue_page(self, user_id: str, job_id: str, index: int, cursor: str | None) -> None:
        assert self.queue is not None
        payload: dict[str, Any] = {
            "user_id": user_id,
            "job_id": job_id,
            "page": index,
            "cursor": cursor,
        }
        self.queue.enqueue(
            APPLY_QUEUE,
            APPLY_FUNCTION,
            APPLY_PATH,
            payload,
            name=f"rules-apply-{job_id}-{index}",
        )

    def run_apply_page(
        self, user_id: str, job_id: str, index: int, cursor: str | None
    ) -> PageOutcome:
        """One page task (see the module docstring). Safe to deliver more than once."""
        job = self.rule_store.get_rule_job(user_id, job_id)
        if job is None or job.status is JobStatus.DONE:
            # Unknown (or finished) job: acknowledge, there is nothing left to do.
            return PageSkipped(job_id, index)
        cmd = ApplyRules.model_validate_json(json.dumps(job.params))
        ruleset = self.ruleset(user_id, cmd.rule_ids)
        flt = TransactionFilter(
            account_id=cmd.account_id,
            date_from=cmd.from_.isoformat() if cmd.from_ else None,
            date_to=cmd.to.isoformat() if cmd.to else None,
            predicate=cmd.selects,
        )
        found = self.ledger.list_transactions(user_id, flt, PAGE, cursor)
        planned = [t.id for t in found.items if ruleset.apply(t).changed]
        page = self.rule_store.start_rule_job_page(
            user_id,
            job_id,
            RuleJobPage(
                index=index,
                cursor=cursor,
                next_cursor=found.next_cursor,
                processed=len(found.items),
                changed=len(planned),
            ),
        )
        if not page.done:
            apply = self._apply_rules
            if apply is None:
                raise RuntimeError("RuleService needs apply_rules to run jobs")
            for transaction_id in planned:
                apply(user_id, transaction_id, ruleset)
            self.rule_store.finish_rule_job_page(user_id, job_id, index, self.clock.now())
        if page.next_cursor is not None:
            # Also on a redelivery of a finished page: the first enqueue may have failed.
            self._enqueue_page(user_id, job_id, index + 1, page.next_cursor)
        return PageRan(job_id, index, page.processed, page.changed, page.next_cursor is None)


def _log_skipped(user_id: str, outcome: r.RulesOutcome) -> None:
    skipped = outcome.skipped
    log.error(
        "rules of user %s: budget spent on transaction %s, %d rules skipped",
        user_id,
        outcome.before.id,
        len(skipped),
        extra={
            "entry": {
                "valorize_event": RULES_SKIPPED,
                "user_id": user_id,
                "transaction_id": outcome.before.id,
                "skipped": len(skipped),
                "first_skipped": skipped[0],
            }
        },
    )
