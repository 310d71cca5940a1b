"""Recurrences CRUD and the automate use case on the in-memory fakes: exactly-once
materialization, month ends and leap years, catch-up, rules on occurrences, notifications,
the fan-out, and the internal endpoints' refusal of users."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import flask
import pytest
from pydantic import ValidationError

from tests.unit.automation_fakes import AutoWorld, make_auto_world
from tests.unit.conftest import OTHER, USER, monthly_rent
from valorize.domain.automation import CHUNK, AutomationKind, scheduled_next
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.events import BalancesChanged, TransactionCreated
from valorize.domain.model import ApiToken, Origin, User
from valorize.domain.notifications import NotificationKind
from valorize.domain.recurrence import occurrence_id
from valorize.entrypoints.recurrence_schemas import RecurrenceOut
from valorize.entrypoints.routes import dump
from valorize.service import automations as automations_module
from valorize.service.automations import RunPage, format_money, previous_month, run_day
from valorize.service.requests.recurrences import UpdateRecurrence
from valorize.service.requests.rules import CreateRule

DAILY, MONTH_START = AutomationKind.DAILY, AutomationKind.MONTH_START
D = date.fromisoformat


@pytest.fixture
def w() -> AutoWorld:
    return make_auto_world()


def recurrence(w: AutoWorld, account_id: str, user: str = USER, **over: Any) -> Any:
    return w.recurrences.create(user, monthly_rent(account_id, **over))


def dates_of(w: AutoWorld, user: str = USER) -> list[str]:
    txns = w.base.memory.spaces[user].transactions.values()
    return sorted(t.date.isoformat() for t in txns if t.origin is Origin.RECURRENCE)


class TestRecurrenceCrud:
    def test_create_takes_the_accounts_currency_and_shows_next_due(self, w: AutoWorld) -> None:
        account = w.base.account(currency="USD")
        rec = recurrence(w, account.id)
        assert rec.currency == "USD"
        shown = dump(RecurrenceOut.of(rec))
        assert shown["next_due"] == "2024-01-31" and shown["materialized_through"] is None
        assert w.recurrences.list(USER, 10, None).items == [rec]

    def test_references_must_be_the_callers_own(self, w: AutoWorld) -> None:
        theirs = w.base.account(OTHER)
        their_cat = w.base.category(OTHER, "Theirs")
        mine = w.base.account()
        with pytest.raises(ValidationFailed) as e:
            recurrence(w, theirs.id)
        assert e.value.errors[0].field == "account_id"
        with pytest.raises(ValidationFailed) as e:
            recurrence(w, mine.id, category_id=their_cat.id)
        assert e.value.errors[0].field == "category_id"

    def test_update_and_delete(self, w: AutoWorld) -> None:
        usd = w.base.account(currency="USD", name="Dollars")
        rec = recurrence(w, w.base.account().id)
        moved = w.recurrences.update(
            USER, rec.id, UpdateRecurrence.model_validate_json(json.dumps({"account_id": usd.id}))
        )
        assert (moved.account_id, moved.currency) == (usd.id, "USD")
        # A null is refused by the request itself (its document says so, issue 12).
        with pytest.raises(ValidationError):
            UpdateRecurrence.model_validate_json('{"amount": null}')
        with pytest.raises(NotFound):
            w.recurrences.get(OTHER, rec.id)
        with pytest.raises(NotFound):
            w.recurrences.delete(OTHER, rec.id)
        w.recurrences.delete(USER, rec.id)
        with pytest.raises(NotFound):
            w.recurrences.get(USER, rec.id)


class TestMaterialize:
    def test_each_due_occurrence_once_with_month_ends_and_a_leap_year(self, w: AutoWorld) -> None:
        account = w.base.account()
        rec = recurrence(w, account.id)
        first = w.automations.run_user(USER, DAILY, D("2024-03-31"))
        assert dates_of(w) == ["2024-01-31", "2024-02-29", "2024-03-31"]
        assert first.created == 3
        assert first.transaction_ids == tuple(
            occurrence_id(rec.id, D(d)) for d in ("2024-01-31", "2024-02-29", "2024-03-31")
        )
        again = w.automations.run_user(USER, DAILY, D("2024-03-31"))
        assert again.created == 0 and len(dates_of(w)) == 3
        assert w.base.balance(account.id) == -450000
        w.automations.run_user(USER, DAILY, D("2025-03-01"))
        assert dates_of(w)[-3:] == ["2024-12-31", "2025-01-31", "2025-02-28"]
        stored = w.recurrences.get(USER, rec.id)
        assert stored.materialized_through == D("2025-03-01")
        assert scheduled_next(stored) == D("2025-03-31")
        assert dump(RecurrenceOut.of(stored))["next_due"] == "2025-03-31"

    def test_a_missed_day_is_caught_up_once(self, w: AutoWorld) -> None:
        account = w.base.account()
        recurrence(w, account.id, schedule={"frequency": "daily"}, start="2025-01-01")
        w.automations.run_user(USER, DAILY, D("2025-01-01"))
        # Jan 2 and 3 were missed; the Jan 4 run creates them, once.
        w.automations.run_user(USER, DAILY, D("2025-01-04"))
        w.automations.run_user(USER, DAILY, D("2025-01-02"))  # a late retry of a missed day
        w.automations.run_user(USER, DAILY, D("2025-01-04"))
        assert dates_of(w) == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]

    def test_a_long_catch_up_goes_in_chunks(
        self, w: AutoWorld, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        account = w.base.account()
        recurrence(w, account.id, schedule={"frequency": "daily"}, start="2024-01-01")
        out = w.automations.run_user(USER, DAILY, D("2024-12-31"))
        assert out.created == 366 > CHUNK
        w.automations.max_steps = 1
        recurrence(w, account.id, schedule={"frequency": "daily"}, start="2023-02-01")
        assert w.automations.run_user(USER, DAILY, D("2023-12-31")).created == CHUNK
        assert w.automations.run_user(USER, DAILY, D("2023-12-31")).created == CHUNK

    def test_occurrences_go_through_the_rules_and_move_the_read_models(self, w: AutoWorld) -> None:
        account = w.base.account()
        housing = w.base.category(name="Housing")
        w.rules.create(
            USER,
            CreateRule.model_validate_json(
                json.dumps(
                    {
                        "name": "rent",
                        "conditions": [{"field": "description", "op": "contains", "value": "rent"}],
                        "actions": [
                            {"action": "set_category", "value": housing.id},
                            {"action": "add_note", "value": "auto"},
                        ],
                    }
                )
            ),
        )
        recurrence(w, account.id, start="2024-05-31")
        w.automations.run_user(USER, DAILY, D("2024-06-30"))
        txns = list(w.base.memory.spaces[USER].transactions.values())
        assert {(t.category_id, t.notes) for t in txns} == {(housing.id, "auto")}
        spending = w.dashboard.spending(USER, "2024-06", 5)
        assert spending.categories[0].category_id == housing.id
        created = [e for e in w.bus.events if isinstance(e, TransactionCreated)]
        assert len(created) == 2
        assert any(isinstance(e, BalancesChanged) for e in w.bus.events)

    def test_deleted_category_and_account(self, w: AutoWorld) -> None:
        account = w.base.account()
        cat = w.base.category(name="Gone")
        recurrence(w, account.id, category_id=cat.id, start="2024-01-31")
        w.base.categories.delete(USER, cat.id, None, True)
        w.automations.run_user(USER, DAILY, D("2024-01-31"))
        [txn] = w.base.memory.spaces[USER].transactions.values()
        assert txn.category_id is None
        other = w.base.account(name="Closed")
        rec = recurrence(w, other.id, start="2024-01-31")
        w.base.accounts.delete(USER, other.id, True)
        w.automations.run_user(USER, DAILY, D("2024-03-31"))
        # Skipped, not queued forever: the watermark moves on.
        assert w.recurrences.get(USER, rec.id).materialized_through == D("2024-03-31")
        assert all(
            t.account_id == account.id for t in w.base.memory.spaces[USER].transactions.values()
        )

    def test_a_paused_or_ended_recurrence_is_not_due(self, w: AutoWorld) -> None:
        account = w.base.account()
        recurrence(w, account.id, start="2024-01-31", end="2024-02-29")
        w.automations.run_user(USER, DAILY, D("2024-12-31"))
        assert dates_of(w) == ["2024-01-31", "2024-02-29"]
        assert w.base.recurrence_store.due_recurrences(USER, D("2030-01-01")) == []

    def test_a_new_schedule_never_recreates_the_past(self, w: AutoWorld) -> None:
        account = w.base.account()
        rec = recurrence(w, account.id, start="2024-01-31")
        w.automations.run_user(USER, DAILY, D("2024-02-29"))
        w.recurrences.update(
            USER,
            rec.id,
            UpdateRecurrence.model_validate_json(
                '{"schedule": {"frequency": "monthly", "day": 15}, "start": "2024-01-01"}'
            ),
        )
        w.automations.run_user(USER, DAILY, D("2024-03-31"))
        assert dates_of(w) == ["2024-01-31", "2024-02-29", "2024-03-15"]


class TestNotifications:
    def test_one_per_recurrence_and_run_with_a_deterministic_id(self, w: AutoWorld) -> None:
        account = w.base.account()
        rec = recurrence(w, account.id)
        w.automations.run_user(USER, DAILY, D("2024-02-29"))
        [sent] = w.notifier.sent
        assert sent.kind is NotificationKind.RECURRENCE_CREATED
        assert sent.id == f"recurrence-{rec.id}-2024-01-31-2024-02-29"
        assert sent.data["count"] == 2 and sent.user_id == USER
        assert "2 transactions of BRL -1,500.00" in sent.body
        w.automations.run_user(USER, DAILY, D("2024-02-29"))
        assert len(w.notifier.sent) == 1

    def test_a_notifier_failure_does_not_fail_the_run(self, w: AutoWorld) -> None:
        w.notifier.fail = True
        recurrence(w, w.base.account().id)
        assert w.automations.run_user(USER, DAILY, D("2024-01-31")).created == 1

    def test_month_summary_for_the_month_that_ended(self, w: AutoWorld) -> None:
        account = w.base.account()
        w.base.txn(account.id, 500000, on=date(2024, 2, 5), description="Salary")
        w.base.txn(account.id, -12345, on=date(2024, 2, 10), description="Market")
        w.base.txn(account.id, -1, on=date(2024, 3, 1), description="Next month")
        out = w.automations.run_user(USER, MONTH_START, D("2024-03-01"))
        assert out.notified == 1
        [sent] = w.notifier.sent
        assert sent.kind is NotificationKind.MONTH_SUMMARY and sent.id == "month-summary-2024-02"
        assert sent.data["income"] == {"amount": 500000, "currency": "BRL"}
        assert sent.data["expense"] == {"amount": 12345, "currency": "BRL"}
        assert sent.data["net"] == {"amount": 487655, "currency": "BRL"}
        # The balance is today's (the summary's), and the other currencies' rows keep the
        # dashboard summary's JSON shape.
        assert sent.data["total_balance"] == {"amount": 487654, "currency": "BRL"}
        assert sent.data["other_currencies"] == []
        # A month without activity sends nothing.
        w.automations.run_user(USER, MONTH_START, D("2024-02-01"))
        assert len(w.notifier.sent) == 1

    def test_month_summary_lists_the_other_currencies(self, w: AutoWorld) -> None:
        w.base.txn(w.base.account().id, 1000, on=date(2024, 2, 5))
        w.base.txn(w.base.account(currency="USD").id, -250, on=date(2024, 2, 6))
        w.automations.run_user(USER, MONTH_START, D("2024-03-01"))
        [sent] = w.notifier.sent
        assert sent.data["other_currencies"] == [
            {
                "currency": "USD",
                "total_balance": {"amount": -250, "currency": "USD"},
                "income": {"amount": 0, "currency": "USD"},
                "expense": {"amount": 250, "currency": "USD"},
                "net": {"amount": -250, "currency": "USD"},
            }
        ]
        # Stored as it always was: the dashboard summary's key order.
        assert list(sent.data["other_currencies"][0]) == [
            "currency",
            "total_balance",
            "income",
            "expense",
            "net",
        ]
        assert sent.body == (
            "income BRL 10.00, expenses BRL 0.00, net BRL 10.00; "
            "income USD 0.00, expenses USD 2.50, net USD -2.50"
        )

    def test_the_run_is_logged(self, w: AutoWorld) -> None:
        recurrence(w, w.base.account().id)
        w.automations.run_user(USER, DAILY, D("2024-01-31"))
        w.automations.run_user(USER, DAILY, D("2024-01-31"))
        log = w.base.memory.spaces[USER].automation_runs["daily-2024-01-31"]
        assert (log["runs"], log["created"]) == (2, 1)


class TestFanOut:
    def test_daily_pages_through_users_with_due_work(self) -> None:
        w = make_auto_world(page_size=2)
        users = [f"{i:032x}" for i in range(1, 5)]
        for user in users:
            account = w.base.account(user)
            recurrence(w, account.id, user)
            recurrence(w, account.id, user, start="2024-02-15")  # not due on Jan 31
        late = "fe" * 16
        recurrence(w, w.base.account(late).id, late, start="2030-01-31")
        first = w.automations.run(DAILY, D("2024-01-31"))
        assert first == RunPage(DAILY, D("2024-01-31"), page=0, users=2, more=True)
        seen: list[str] = []
        while tasks := w.queue.take():
            for task in tasks:
                p = task.payload
                if task.path == automations_module.FANOUT_PATH:
                    assert task.name == f"auto-fanout-daily-2024-01-31-{p['page']}"
                    w.automations.fan_out(DAILY, D(p["date"]), p["cursor"], p["page"])
                else:
                    assert task.path == "/api/automations/user" and task.function == "automate"
                    assert task.name == f"auto-daily-2024-01-31-{p['user_id']}"
                    seen.append(p["user_id"])
                    w.automations.run_user(p["user_id"], AutomationKind(p["kind"]), D(p["date"]))
        assert sorted(seen) == users
        for user in users:
            assert dates_of(w, user) == ["2024-01-31"]
        # Nothing is due any more on that day: a second run fans out to nobody.
        assert w.automations.run(DAILY, D("2024-01-31")).users == 0

    def test_month_start_reaches_every_user(self) -> None:
        w = make_auto_world(page_size=2)
        now = w.base.clock.now()
        for i in range(5):
            user = User(f"{i:032x}", f"m{i}@example.com", "M", "BRL", "en", now)
            w.base.user_store.create_user(user, "h", [], ApiToken(f"t{i}", user.id, "t", now), "s")
        out = w.automations.run(MONTH_START, D("2024-03-01"))
        assert (out.users, out.more) == (2, True)
        seen: list[str] = []
        while tasks := w.queue.take():
            for task in tasks:
                p = task.payload
                if task.path == automations_module.FANOUT_PATH:
                    w.automations.fan_out(MONTH_START, D(p["date"]), p["cursor"], p["page"])
                else:
                    assert task.name == f"auto-month_start-2024-03-01-{p['user_id']}"
                    seen.append(p["user_id"])
        assert sorted(seen) == sorted([*(f"{i:032x}" for i in range(5)), OTHER, USER])


class TestRunDay:
    def test_the_body_then_the_scheduler_header_then_today(self) -> None:
        now = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
        assert run_day(D("2024-01-01"), "2025-03-01T03:00:00Z", now) == D("2024-01-01")
        assert run_day(None, "2025-02-28T23:30:00-03:00", now) == D("2025-03-01")
        assert run_day(None, "2025-03-01T03:00:00.52Z", now) == D("2025-03-01")
        assert run_day(None, "garbage", now) == D("2025-03-01")
        assert run_day(None, None, now - timedelta(hours=3)) == D("2025-02-28")

    def test_helpers(self) -> None:
        assert previous_month(D("2025-01-01")) == "2024-12"
        assert previous_month(D("2025-03-01")) == "2025-02"
        assert format_money(-150050, "BRL") == "BRL -1,500.50"
        assert format_money(1234, "JPY") == "JPY 1,234"


FLASK = flask.Flask(__name__)


class TestInternalEndpoints:
    @pytest.fixture
    def automate(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        import importlib.util
        from pathlib import Path

        monkeypatch.setenv("VALORIZE_INTERNAL_SECRET", "s3cret")
        path = Path(__file__).resolve().parents[2] / "functions" / "automate" / "main.py"
        spec = importlib.util.spec_from_file_location("automate_main_under_test", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module.app

    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Authorization": "Bearer vz_0123_usertoken"},
            {"X-Valorize-Internal": "wrong"},
        ],
    )
    def test_users_and_anonymous_callers_are_refused(
        self, automate: Any, headers: dict[str, str]
    ) -> None:
        for path in ("/api/automations/run", "/api/automations/user", "/api/automations/fanout"):
            with FLASK.test_request_context(
                path,
                method="POST",
                data=json.dumps({"kind": "daily"}),
                headers=headers,
                content_type="application/json",
            ):
                response = automate(flask.request)
            assert response.status_code == 401, (path, response.get_data(as_text=True))
            assert response.mimetype == "application/problem+json"
