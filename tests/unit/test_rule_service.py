"""RuleService on the in-memory fakes: ordered CRUD with reference checks, the rule set every
new transaction goes through, and on-demand jobs run page by page as tasks."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import flask
import pytest

from tests.unit.automation_fakes import AutoWorld, make_auto_world
from tests.unit.conftest import OTHER, USER
from valorize.config import INTERNAL_HEADER
from valorize.domain.automation import JobStatus
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.events import TransactionUpdated
from valorize.domain.limits import LimitReached
from valorize.domain.readmodel import recompute
from valorize.entrypoints.http import FunctionApp
from valorize.service import rules as rules_module
from valorize.service.requests import CreateTransaction, ListTransactions
from valorize.service.requests.rules import ApplyRules, CreateRule, UpdateRule, rule_json


@pytest.fixture
def w() -> AutoWorld:
    return make_auto_world()


def rule_cmd(
    name: str = "Uber",
    *,
    contains: str = "uber",
    category_id: str | None = None,
    rename: str | None = None,
    note: str | None = None,
    **extra: Any,
) -> CreateRule:
    actions: list[dict[str, Any]] = []
    if category_id:
        actions.append({"action": "set_category", "value": category_id})
    if rename:
        actions.append({"action": "rename_description", "value": rename})
    if note:
        actions.append({"action": "add_note", "value": note})
    body = {
        "name": name,
        "conditions": [{"field": "description", "op": "contains", "value": contains}],
        "actions": actions or [{"action": "add_note", "value": "seen"}],
        **extra,
    }
    return CreateRule.model_validate_json(json.dumps(body))


def positions(w: AutoWorld, user: str = USER) -> list[tuple[str, int]]:
    return [(r.name, r.position) for r in w.base.rule_store.list_rules(user)]


class TestCrud:
    def test_rules_append_insert_move_and_delete_keep_dense_positions(self, w: AutoWorld) -> None:
        a = w.rules.create(USER, rule_cmd("a"))
        w.rules.create(USER, rule_cmd("b"))
        w.rules.create(USER, rule_cmd("c", position=0))
        assert positions(w) == [("c", 0), ("a", 1), ("b", 2)]
        w.rules.create(USER, rule_cmd("d", position=99))  # clamped to the end
        assert positions(w) == [("c", 0), ("a", 1), ("b", 2), ("d", 3)]
        moved = w.rules.update(USER, a.id, UpdateRule(position=3))
        assert moved.position == 3
        assert positions(w) == [("c", 0), ("b", 1), ("d", 2), ("a", 3)]
        w.rules.update(USER, a.id, UpdateRule(name="a2"))  # not moving: keeps its place
        assert positions(w) == [("c", 0), ("b", 1), ("d", 2), ("a2", 3)]
        w.rules.delete(USER, w.base.rule_store.list_rules(USER)[1].id)
        assert positions(w) == [("c", 0), ("d", 1), ("a2", 2)]

    def test_list_pages_in_run_order(self, w: AutoWorld) -> None:
        for name in "abcde":
            w.rules.create(USER, rule_cmd(name))
        first = w.rules.list(USER, 2, None)
        assert [r.name for r in first.items] == ["a", "b"] and first.next_cursor
        second = w.rules.list(USER, 2, first.next_cursor)
        third = w.rules.list(USER, 2, second.next_cursor)
        assert [r.name for r in second.items + third.items] == ["c", "d", "e"]
        assert third.next_cursor is None

    def test_references_must_be_the_callers_own(self, w: AutoWorld) -> None:
        mine = w.base.category(USER, "Transport")
        theirs = w.base.category(OTHER, "Theirs")
        their_account = w.base.account(OTHER)
        with pytest.raises(ValidationFailed) as e:
            w.rules.create(USER, rule_cmd(category_id=theirs.id))
        assert [f.field for f in e.value.errors] == ["actions.0.value"]
        cmd = CreateRule.model_validate_json(
            json.dumps(
                {
                    "name": "acc",
                    "conditions": [
                        {"field": "type", "op": "is", "value": "debit"},
                        {"field": "account_id", "op": "in", "value": [their_account.id]},
                    ],
                    "actions": [{"action": "set_category", "value": mine.id}],
                }
            )
        )
        with pytest.raises(ValidationFailed) as e:
            w.rules.create(USER, cmd)
        assert [f.field for f in e.value.errors] == ["conditions.1.value"]
        assert w.base.rule_store.list_rules(USER) == []

    def test_a_bad_regex_names_the_condition(self, w: AutoWorld) -> None:
        cmd = CreateRule.model_validate_json(
            json.dumps(
                {
                    "name": "bad",
                    "conditions": [{"field": "description", "op": "matches", "value": "(uber"}],
                    "actions": [{"action": "add_note", "value": "x"}],
                }
            )
        )
        with pytest.raises(ValidationFailed) as e:
            w.rules.create(USER, cmd)
        assert [f.field for f in e.value.errors] == ["conditions.0.value"]

    def test_another_users_rule_is_not_found(self, w: AutoWorld) -> None:
        rule = w.rules.create(USER, rule_cmd())
        with pytest.raises(NotFound):
            w.rules.get(OTHER, rule.id)
        with pytest.raises(NotFound):
            w.rules.update(OTHER, rule.id, UpdateRule(name="x"))
        with pytest.raises(NotFound):
            w.rules.delete(OTHER, rule.id)
        assert w.rules.get(USER, rule.id) == rule

    def test_at_most_max_rules(self, w: AutoWorld) -> None:
        w.rules.max_rules = 2
        w.rules.create(USER, rule_cmd("a"))
        w.rules.create(USER, rule_cmd("b"))
        with pytest.raises(LimitReached, match="at most 2") as refused:
            w.rules.create(USER, rule_cmd("c"))
        assert [e.field for e in refused.value.errors] == ["rules"]
        assert refused.value.extensions == {"limit": 2}
        assert len(w.rules.list(USER, 10, None).items) == 2

    def test_the_limit_is_the_setting(self) -> None:
        from tests import fakes
        from valorize.config import Settings

        services = fakes.build(Settings.from_env({"VALORIZE_MAX_RULES": "7"}))
        assert services.rules.max_rules == 7
        with pytest.raises(ValueError, match="200"):
            Settings.from_env({"VALORIZE_MAX_RULES": "201"})

    def test_json_round_trip(self, w: AutoWorld) -> None:
        cat = w.base.category()
        rule = w.rules.create(USER, rule_cmd(category_id=cat.id, rename="Uber", note="ride"))
        shown = rule_json(rule)
        assert shown["actions"] == [
            {"action": "set_category", "value": cat.id},
            {"action": "rename_description", "value": "Uber"},
            {"action": "add_note", "value": "ride"},
        ]
        assert shown["position"] == 0 and shown["match"] == "all"


class TestOnCreate:
    def test_a_new_transaction_goes_through_the_rules(self, w: AutoWorld) -> None:
        cat = w.base.category(name="Transport")
        w.rules.create(USER, rule_cmd(category_id=cat.id, rename="Uber", note="ride"))
        account = w.base.account()
        txn = w.base.txn(account.id, -2500, description="PAG*UBER TRIP 123")
        assert (txn.description, txn.category_id, txn.notes) == ("Uber", cat.id, "ride")
        assert w.base.ledger.get_transaction(USER, txn.id) == txn
        other = w.base.txn(account.id, -100, description="Bakery")
        assert other.category_id is None and other.notes is None

    def test_the_callers_explicit_category_wins(self, w: AutoWorld) -> None:
        rule_cat = w.base.category(name="Transport")
        mine = w.base.category(name="Work")
        w.rules.create(USER, rule_cmd(category_id=rule_cat.id, rename="Uber"))
        account = w.base.account()
        txn = w.base.txn(account.id, -2500, description="uber", category_id=mine.id)
        assert (txn.category_id, txn.description) == (mine.id, "Uber")

    def test_transfers_and_other_users_are_untouched(self, w: AutoWorld) -> None:
        w.rules.create(USER, rule_cmd(contains="move", rename="Renamed"))
        a, b = w.base.account(), w.base.account(name="Savings")
        out, into = w.base.transfer(a.id, b.id, 500)
        assert out.description == into.description == "Move"
        theirs = w.base.account(OTHER)
        assert w.base.txn(theirs.id, -1, OTHER, description="move").description == "move"

    def test_disabled_rules_and_deleted_categories_do_nothing(self, w: AutoWorld) -> None:
        cat = w.base.category(name="Gone")
        w.rules.create(USER, rule_cmd("cat", category_id=cat.id))
        w.rules.create(USER, rule_cmd("off", rename="Never", enabled=False))
        w.base.categories.delete(USER, cat.id, None, False)
        account = w.base.account()
        txn = w.base.txn(account.id, -1, description="uber")
        assert (txn.category_id, txn.description) == (None, "uber")


def make_history(w: AutoWorld) -> tuple[str, str, list[str]]:
    """Seven transactions, five of which a rule changes; returns (account, category, ids)."""
    account = w.base.account()
    cat = w.base.category(name="Transport")
    ids = []
    start = date(2024, 1, 1)
    for i, text in enumerate(["uber a", "uber b", "bakery", "UBER c", "úber d", "rent", "uber e"]):
        ids.append(
            w.base.txn(account.id, -100 - i, on=start + timedelta(days=i), description=text).id
        )
    return account.id, cat.id, ids


def drain(w: AutoWorld, *, deliver_twice: bool = False) -> int:
    """Run every pending page task (in order, each maybe twice); returns tasks run."""
    ran = 0
    while tasks := w.queue.take(rules_module.APPLY_PATH):
        for task in tasks:
            p = task.payload
            for _ in range(2 if deliver_twice else 1):
                w.rules.run_apply_page(p["user_id"], p["job_id"], p["page"], p["cursor"])
                ran += 1
    return ran


class TestApplyJob:
    def test_a_job_changes_only_what_the_rules_change_and_counts_once(
        self, w: AutoWorld, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(rules_module, "PAGE", 3)
        _, cat_id, ids = make_history(w)
        w.rules.create(USER, rule_cmd(category_id=cat_id))  # added after: not applied yet
        before = {i: w.base.ledger.get_transaction(USER, i) for i in ids}
        w.bus.events.clear()
        job = w.rules.start_apply(USER, ApplyRules())
        assert w.rules.job(USER, job.id).status is JobStatus.QUEUED
        [first] = w.queue.tasks
        assert (first.function, first.path, first.name) == (
            "rules",
            "/api/rules/apply/run",
            f"rules-apply-{job.id}-0",
        )
        assert drain(w, deliver_twice=True) == 6  # three pages, each delivered twice
        done = w.rules.job(USER, job.id)
        assert (done.status, done.processed, done.changed, done.pages) == (JobStatus.DONE, 7, 5, 3)
        assert done.finished_at is not None
        after = {i: w.base.ledger.get_transaction(USER, i) for i in ids}
        changed = [i for i in ids if after[i] != before[i]]
        assert len(changed) == 5 and all(after[i].category_id == cat_id for i in changed)
        updates = [e for e in w.bus.events if isinstance(e, TransactionUpdated)]
        assert sorted(e.transaction.id for e in updates) == sorted(changed)
        # The read models follow (the fake's are recomputed, so compare to the oracle).
        model = recompute(w.base.memory.spaces[USER].transactions.values())
        assert model["2024-01"]["BRL"]["categories"][cat_id]["expense"] == sum(
            abs(after[i].amount) for i in changed
        )
        # Running it again changes nothing.
        again = w.rules.start_apply(USER, ApplyRules())
        drain(w)
        assert (w.rules.job(USER, again.id).processed, w.rules.job(USER, again.id).changed) == (
            7,
            0,
        )

    def test_filters_narrow_the_job(self, w: AutoWorld) -> None:
        account_id, cat_id, ids = make_history(w)
        rule = w.rules.create(USER, rule_cmd(category_id=cat_id))
        w.rules.create(USER, rule_cmd("note", contains="rent", note="home"))
        cmd = ApplyRules.model_validate_json(
            json.dumps(
                {
                    "from": "2024-01-02",
                    "to": "2024-01-05",
                    "only_uncategorized": True,
                    "rule_ids": [rule.id],
                    "account_id": account_id,
                }
            )
        )
        job = w.rules.start_apply(USER, cmd)
        drain(w)
        done = w.rules.job(USER, job.id)
        assert (done.processed, done.changed) == (4, 3)
        got = [w.base.ledger.get_transaction(USER, i) for i in ids]
        assert [t.category_id == cat_id for t in got] == [
            False,
            True,
            False,
            True,
            True,
            False,
            False,
        ]
        assert got[5].notes is None  # rule "note" was not asked for

    def test_bad_filters_are_422(self, w: AutoWorld) -> None:
        theirs = w.base.account(OTHER)
        mine = w.rules.create(USER, rule_cmd())
        for body, field in (
            ({"account_id": theirs.id}, "account_id"),
            ({"rule_ids": [mine.id, "f" * 32]}, "rule_ids.1"),
            ({"from": "2024-02-01", "to": "2024-01-01"}, "to"),
        ):
            with pytest.raises(ValidationFailed) as e:
                w.rules.start_apply(USER, ApplyRules.model_validate_json(json.dumps(body)))
            assert [f.field for f in e.value.errors] == [field]
        assert w.queue.tasks == []

    def test_an_empty_history_finishes_at_once(self, w: AutoWorld) -> None:
        job = w.rules.start_apply(USER, ApplyRules())
        drain(w)
        assert w.rules.job(USER, job.id).status is JobStatus.DONE

    def test_another_users_job_is_not_found(self, w: AutoWorld) -> None:
        job = w.rules.start_apply(USER, ApplyRules())
        with pytest.raises(NotFound):
            w.rules.job(OTHER, job.id)

    def test_a_user_edit_in_between_is_respected(self, w: AutoWorld) -> None:
        account = w.base.account()
        txn = w.base.txn(account.id, -1, description="uber")
        w.rules.create(USER, rule_cmd(rename="Uber"))
        assert w.transactions.list(USER, ListTransactions()).items[0].description == "uber"
        cmd = CreateTransaction(
            account_id=account.id, amount=-5, date=date(2024, 2, 1), description="Taxi"
        )
        assert w.transactions.create(USER, cmd).description == "Taxi"
        job = w.rules.start_apply(USER, ApplyRules())
        drain(w)
        assert w.base.ledger.get_transaction(USER, txn.id).description == "Uber"
        assert w.rules.job(USER, job.id).changed == 1


FLASK = flask.Flask(__name__)
SECRET = "s3cret"


def page_task(w: AutoWorld, job_id: str, page: int, cursor: str | None = None) -> bytes:
    """One page task through the rules function's route: the answer's exact bytes."""
    path = Path(__file__).resolve().parents[2] / "functions" / "rules" / "main.py"
    spec = importlib.util.spec_from_file_location("rules_main_under_test", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    services = w.base.services
    services.settings = replace(services.settings, internal_secret=SECRET)
    app = FunctionApp("rules", module.app.routes, services)
    body = {"user_id": USER, "job_id": job_id, "page": page, "cursor": cursor}
    with FLASK.test_request_context(
        "/api/rules/apply/run", method="POST", json=body, headers={INTERNAL_HEADER: SECRET}
    ):
        response = app(flask.request)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data()


def test_a_page_task_answers_its_counts_or_that_it_skipped(
    w: AutoWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules_module, "PAGE", 5)
    _, cat_id, _ = make_history(w)
    w.rules.create(USER, rule_cmd(category_id=cat_id))
    job = w.rules.start_apply(USER, ApplyRules())
    first = page_task(w, job.id, 0)
    assert (
        first == f'{{"job_id":"{job.id}","page":0,"processed":5,"changed":3,"last":false}}'.encode()
    )
    [task] = w.queue.take(rules_module.APPLY_PATH)[-1:]
    last = page_task(w, job.id, 1, task.payload["cursor"])
    assert (
        last == f'{{"job_id":"{job.id}","page":1,"processed":2,"changed":2,"last":true}}'.encode()
    )
    # The job is done: a late delivery, or an unknown job, is acknowledged and skipped.
    assert page_task(w, job.id, 1) == f'{{"job_id":"{job.id}","page":1,"skipped":true}}'.encode()
    unknown = "f" * 32
    assert page_task(w, unknown, 0) == f'{{"job_id":"{unknown}","page":0,"skipped":true}}'.encode()
