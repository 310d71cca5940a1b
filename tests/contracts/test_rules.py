"""The RuleStore port: rules in run order, and on-demand runs counting each page once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.contracts.conftest import NOW, Make, new_id
from valorize.bootstrap import Services
from valorize.domain.automation import JobStatus, RuleJob, RuleJobPage
from valorize.domain.errors import NotFound
from valorize.domain.rules import (
    DescriptionContains,
    DescriptionStartsWith,
    Match,
    RenameDescription,
    Rule,
    SetCategory,
    placed,
)


def new_rule(name: str, **over: object) -> Rule:
    fields: dict[str, object] = {
        "id": new_id(),
        "name": name,
        "position": 0,
        "conditions": (DescriptionContains("uber"), DescriptionStartsWith("pag")),
        "actions": (SetCategory(new_id()), RenameDescription("Uber ü")),
        "created_at": NOW,
        "updated_at": NOW,
        **over,
    }
    return Rule(**fields)  # type: ignore[arg-type]


def test_rules_keep_their_order(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.rule_store
    first = store.add_rule(uid, lambda order: placed(new_rule("first"), order, None))
    last = store.add_rule(uid, lambda order: placed(new_rule("last"), order, None))
    middle = store.add_rule(
        uid, lambda order: placed(new_rule("middle", match=Match.ANY, stop=True), order, 1)
    )
    assert (first.position, last.position, middle.position) == (0, 1, 1)
    order = store.list_rules(uid)
    assert [r.name for r in order] == ["first", "middle", "last"]
    assert [r.position for r in order] == [0, 1, 2]
    assert order[1] == middle  # every field round-trips

    def to_front(rule: Rule, others: list[Rule]) -> Rule:
        assert [r.name for r in others] == ["first", "middle"]
        return placed(replace(rule, enabled=False), others, 0)

    moved = store.update_rule(uid, last.id, to_front)
    assert moved.position == 0 and not moved.enabled
    assert [r.name for r in store.list_rules(uid)] == ["last", "first", "middle"]
    with pytest.raises(NotFound):
        store.update_rule(uid, new_id(), lambda r, _: r)
    assert store.delete_rule(uid, first.id) is True
    assert store.delete_rule(uid, first.id) is False
    assert [(r.name, r.position) for r in store.list_rules(uid)] == [("last", 0), ("middle", 1)]


def test_a_job_page_counts_once(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.rule_store
    job = RuleJob(id=new_id(), params={"account_id": None}, created_at=NOW, updated_at=NOW)
    store.add_rule_job(uid, job)
    assert store.get_rule_job(uid, job.id) == job
    assert store.get_rule_job(uid, new_id()) is None
    first = RuleJobPage(0, None, "cursor-1", processed=100, changed=7)
    assert store.start_rule_job_page(uid, job.id, first) == first
    # A redelivery's different view of the page does not replace the record.
    assert store.start_rule_job_page(uid, job.id, RuleJobPage(0, None, None, 99, 3)) == first
    assert store.finish_rule_job_page(uid, job.id, 0, NOW) is True
    assert store.finish_rule_job_page(uid, job.id, 0, NOW) is False
    running = store.get_rule_job(uid, job.id)
    assert running is not None and running.status is JobStatus.RUNNING
    store.start_rule_job_page(uid, job.id, RuleJobPage(1, "cursor-1", None, 5, 1))
    assert store.finish_rule_job_page(uid, job.id, 1, NOW) is True
    done = store.get_rule_job(uid, job.id)
    assert done is not None
    assert (done.status, done.processed, done.changed, done.pages) == (JobStatus.DONE, 105, 8, 2)
    assert done.finished_at == NOW
    with pytest.raises(NotFound):
        store.finish_rule_job_page(uid, job.id, 7, NOW)
