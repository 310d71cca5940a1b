"""The AutomationStore port: the scheduler's pages across users (each test has its own
Firestore project, so only its users are there)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.contracts.conftest import NOW, Make
from valorize.bootstrap import Services
from valorize.domain.errors import ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.recurrence import Daily

D = date.fromisoformat


def test_users_with_due_recurrences_page_through_every_user(services: Services, make: Make) -> None:
    day = D("1990-06-15")
    users = [make.user() for _ in range(3)]
    for uid in users:
        account = make.account(uid)
        for _ in range(2):
            make.recurrence(uid, account, schedule=Daily(), start=day)
    later = make.user()
    make.recurrence(later, make.account(later), schedule=Daily(), start=day + timedelta(days=1))
    store = services.automation_store
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.users_with_due_recurrences(day, 4, cursor)
        pages += 1
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.items) <= 4
    assert sorted(set(seen)) == sorted(users) and pages == 2
    assert store.users_with_due_recurrences(day - timedelta(days=1), 500, None).items == []
    with pytest.raises(ValidationFailed):
        store.users_with_due_recurrences(day, 4, encode_cursor("1990-06-15|users/../x"))


def test_users_page_by_id(services: Services, make: Make) -> None:
    made = sorted(make.user() for _ in range(3))
    seen: list[str] = []
    cursor = None
    while True:
        page = services.automation_store.list_user_ids(2, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made


def test_a_run_is_recorded(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.automation_store
    store.record_automation_run(uid, "daily-2025-01-01", 3, NOW)
    store.record_automation_run(uid, "daily-2025-01-01", 0, NOW)  # a redelivery adds a run
