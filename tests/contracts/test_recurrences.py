"""The RecurrenceStore port: CRUD, what is due, and occurrences created exactly once."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.contracts.conftest import NOW, Make, new_id
from tests.contracts.test_accounts import delete_all
from tests.contracts.test_ledger import consistent, every
from valorize.bootstrap import Services
from valorize.domain import automation as auto
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.model import Origin
from valorize.domain.recurrence import Daily, Recurrence, Weekday, Weekly
from valorize.service.ports import IdempotencyRecord, IdempotentReplay

D = date.fromisoformat


def test_recurrences_round_trip_and_page(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    store = services.recurrence_store
    full = make.recurrence(
        uid,
        account,
        schedule=Weekly(Weekday.THURSDAY, interval=2),
        start=D("2024-02-29"),
        end=D("2025-02-28"),
        category_id=new_id(),
        notes="ü",
        materialized_through=D("2024-03-01"),
    )
    assert store.get_recurrence(uid, full.id) == full
    assert store.get_recurrence(uid, new_id()) is None
    made = sorted([full, *(make.recurrence(uid, account) for _ in range(4))], key=lambda r: r.id)
    seen: list[Recurrence] = []
    cursor = None
    while True:
        page = store.list_recurrences(uid, 2, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made
    with pytest.raises(ValidationFailed):
        store.list_recurrences(uid, 2, encode_cursor("../x"))
    later = NOW + timedelta(days=1)
    updated = store.update_recurrence(
        uid, full.id, lambda r: replace(r, amount=-7, updated_at=later)
    )
    assert (
        store.get_recurrence(uid, full.id) == updated == replace(full, amount=-7, updated_at=later)
    )
    with pytest.raises(NotFound):
        store.update_recurrence(uid, new_id(), lambda r: r)
    assert store.delete_recurrence(uid, full.id) is True
    assert store.delete_recurrence(uid, full.id) is False


def test_the_idempotency_record_commits_with_the_recurrence(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    rec = make.recurrence(uid, account)
    record = IdempotencyRecord("r" * 64, "fp", 201, {}, datetime(2100, 1, 1, tzinfo=UTC))
    services.recurrence_store.add_recurrence(uid, replace(rec, id=new_id()), record)
    with pytest.raises(IdempotentReplay):
        services.recurrence_store.add_recurrence(uid, replace(rec, id=new_id()), record)
    assert len(services.recurrence_store.list_recurrences(uid, 10, None).items) == 2


def test_due_recurrences(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    monthly = make.recurrence(uid, account)  # the 31st (last day) from 2024-01-31
    caught_up = make.recurrence(uid, account, materialized_through=D("2024-02-29"))
    ended = make.recurrence(uid, account, end=D("2024-02-15"), materialized_through=D("2024-01-31"))
    store = services.recurrence_store
    assert store.due_recurrences(uid, D("2024-01-30")) == []
    assert [r.id for r in store.due_recurrences(uid, D("2024-01-31"))] == [monthly.id]
    due = store.due_recurrences(uid, D("2024-03-31"))
    assert sorted(r.id for r in due) == sorted([monthly.id, caught_up.id])
    assert ended.id not in {r.id for r in due}


def test_occurrences_are_created_once_with_the_ledger(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    rec = make.recurrence(uid, account, schedule=Daily(), start=D("2024-01-01"))
    store = services.recurrence_store
    today = D("2024-01-05")

    def plan(current: Recurrence) -> auto.Materialization | None:
        return auto.plan(current, today, now=NOW)

    result = store.materialize(uid, rec.id, plan)
    assert result is not None
    stepped, created = result
    assert stepped.materialized_through == today and len(created) == 5
    assert {t.origin for t in every(services, uid)} == {Origin.RECURRENCE}
    again = store.get_recurrence(uid, rec.id)
    assert again is not None and again.materialized_through == today
    assert store.materialize(uid, rec.id, plan) is None
    assert store.materialize(uid, new_id(), plan) is None
    stored = services.account_store.get_account(uid, account.id)
    assert stored is not None and (stored.balance, stored.transaction_count) == (-5_000, 5)
    consistent(services, uid)


def test_an_occurrence_already_created_is_not_created_again(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    rec = make.recurrence(uid, account, schedule=Daily(), start=D("2024-01-01"))
    step = auto.plan(rec, D("2024-01-03"), now=NOW)
    assert step is not None
    services.ledger.add_transactions(uid, [step.transactions[0]])
    result = services.recurrence_store.materialize(uid, rec.id, lambda _: step)
    assert result is not None and [t.id for t in result[1]] == [t.id for t in step.transactions[1:]]
    assert len(every(services, uid)) == 3
    consistent(services, uid)


def test_an_occurrence_for_a_deleted_account_is_refused(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid)
    rec = make.recurrence(uid, account, schedule=Daily(), start=D("2024-01-01"))
    delete_all(services, uid, account.id)
    with pytest.raises(NotFound):
        services.recurrence_store.materialize(
            uid, rec.id, lambda r: auto.plan(r, D("2024-01-02"), now=NOW)
        )
    left = services.recurrence_store.get_recurrence(uid, rec.id)
    assert left == rec and every(services, uid) == []


def test_concurrent_runs_create_each_occurrence_once(
    services: Services, make: Make, concurrent: None
) -> None:
    uid = make.user()
    account = make.account(uid)
    rec = make.recurrence(uid, account, schedule=Daily(), start=D("2024-01-01"))
    today = D("2024-01-20")

    def plan(current: Recurrence) -> auto.Materialization | None:
        return auto.plan(current, today, now=NOW)

    created: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result = services.recurrence_store.materialize(uid, rec.id, plan)
            created.append(len(result[1]) if result else 0)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sum(created) == 20
    assert len(every(services, uid)) == 20
    consistent(services, uid)
