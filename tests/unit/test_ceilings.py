"""What one user may keep (issue 12, defect 4): accounts, categories, recurrences and rules per
user (422 naming the limit), how far back a recurrence may start, and how many occurrences
one scheduler run creates (the rest caught up by the next runs, exactly once)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest

from tests import fakes
from tests.unit.automation_fakes import AutoWorld, make_auto_world
from tests.unit.conftest import OTHER, USER
from valorize.config import Settings
from valorize.domain.automation import CHUNK, AutomationKind
from valorize.domain.errors import ValidationFailed
from valorize.domain.limits import LimitReached
from valorize.domain.model import CategoryType, Color, Origin
from valorize.service.requests import CreateCategory
from valorize.service.requests.recurrences import CreateRecurrence, UpdateRecurrence


@pytest.fixture
def w() -> AutoWorld:
    return make_auto_world()


def recurrence_cmd(account_id: str, start: date, **over: Any) -> CreateRecurrence:
    body = {
        "account_id": account_id,
        "amount": -100,
        "description": "Daily",
        "schedule": {"frequency": "daily"},
        "start": start.isoformat(),
        **over,
    }
    return CreateRecurrence.model_validate_json(json.dumps(body))


def refused(error: pytest.ExceptionInfo[LimitReached], what: str, limit: int) -> None:
    assert error.value.status == 422
    assert [e.field for e in error.value.errors] == [what]
    assert error.value.extensions == {"limit": limit}


class TestPerUser:
    def test_accounts(self, w: AutoWorld) -> None:
        w.base.accounts.max_accounts = 2
        w.base.account(name="a")
        w.base.account(name="b")
        with pytest.raises(LimitReached) as e:
            w.base.account(name="c")
        refused(e, "accounts", 2)
        assert len(w.base.accounts.list(USER, 10, None).items) == 2
        # Another user's are theirs.
        w.base.account(OTHER, name="c")

    def test_categories_counting_the_defaults(self, w: AutoWorld) -> None:
        services = w.base.services
        held = len(services.categories.list(USER, 200, None).items)
        services.categories.max_categories = held + 1
        cmd = CreateCategory(name="Pets", color=Color.RED, type=CategoryType.EXPENSE)
        services.categories.create(USER, cmd)
        with pytest.raises(LimitReached) as e:
            services.categories.create(USER, cmd.model_copy(update={"name": "Kids"}))
        refused(e, "categories", held + 1)

    def test_recurrences(self, w: AutoWorld) -> None:
        w.recurrences.max_recurrences = 1
        account = w.base.account()
        today = w.recurrences.today()
        w.recurrences.create(USER, recurrence_cmd(account.id, today))
        with pytest.raises(LimitReached) as e:
            w.recurrences.create(USER, recurrence_cmd(account.id, today))
        refused(e, "recurrences", 1)

    def test_each_limit_is_a_setting(self) -> None:
        env = {
            "VALORIZE_MAX_ACCOUNTS": "3",
            "VALORIZE_MAX_CATEGORIES": "4",
            "VALORIZE_MAX_RECURRENCES": "5",
            "VALORIZE_RECURRENCE_BACKDATE_DAYS": "30",
            "VALORIZE_RECURRENCE_OCCURRENCES_PER_RUN": "250",
            "VALORIZE_RULES_BUDGET_MS": "20",
        }
        services = fakes.build(Settings.from_env(env))
        assert services.accounts.max_accounts == 3
        assert services.categories.max_categories == 4
        assert services.recurrences.max_recurrences == 5
        assert services.recurrences.backdate_days == 30
        assert services.automations.max_steps == -(-250 // CHUNK)
        assert services.rules.budget == 0.02


def earliest_daily(w: AutoWorld) -> date:
    """A daily recurrence created with the earliest start allowed; that start."""
    account = w.base.account()
    earliest = w.recurrences.today() - timedelta(days=w.recurrences.backdate_days)
    w.recurrences.create(USER, recurrence_cmd(account.id, earliest))
    return earliest


class TestRecurrenceStart:
    def test_a_start_further_back_than_the_limit_is_refused_on_start(self, w: AutoWorld) -> None:
        earliest = earliest_daily(w)
        account = w.base.account(name="Other")
        for start in (earliest - timedelta(days=1), date(1, 1, 1)):
            with pytest.raises(ValidationFailed) as e:
                w.recurrences.create(USER, recurrence_cmd(account.id, start))
            assert [f.field for f in e.value.errors] == ["start"]

    def test_an_update_cannot_move_the_start_further_back(self, w: AutoWorld) -> None:
        account = w.base.account()
        rec = w.recurrences.create(USER, recurrence_cmd(account.id, w.recurrences.today()))
        with pytest.raises(ValidationFailed) as e:
            w.recurrences.update(
                USER, rec.id, UpdateRecurrence.model_validate_json('{"start": "0001-01-01"}')
            )
        assert [f.field for f in e.value.errors] == ["start"]
        assert w.recurrences.get(USER, rec.id).start == rec.start


class TestOccurrencesPerRun:
    def test_the_oldest_start_allowed_is_caught_up_over_runs_exactly_once(
        self, w: AutoWorld
    ) -> None:
        earliest_daily(w)
        today = w.recurrences.today()
        per_run = w.automations.max_steps * CHUNK
        due = w.recurrences.backdate_days + 1
        created = [w.automations.run_user(USER, AutomationKind.DAILY, today).created]
        while sum(created) < due and len(created) < 100:
            created.append(w.automations.run_user(USER, AutomationKind.DAILY, today).created)
        assert sum(created) == due and max(created) <= per_run
        assert w.automations.run_user(USER, AutomationKind.DAILY, today).created == 0

    def test_a_longer_backlog_is_caught_up_over_runs_exactly_once(self, w: AutoWorld) -> None:
        # A recurrence stored before the start bound existed: from the year 1.
        account = w.base.account()
        w.recurrences.backdate_days = 10**6
        w.recurrences.create(USER, recurrence_cmd(account.id, date(1, 1, 1)))
        today = w.recurrences.today()
        created = [w.automations.run_user(USER, AutomationKind.DAILY, today).created]
        created.append(w.automations.run_user(USER, AutomationKind.DAILY, today).created)
        per_run = w.automations.max_steps * CHUNK
        assert created == [per_run, per_run]
        txns = w.base.memory.spaces[USER].transactions.values()
        days = sorted(t.date for t in txns if t.origin is Origin.RECURRENCE)
        assert days == [date(1, 1, 1) + timedelta(days=i) for i in range(2 * per_run)]
