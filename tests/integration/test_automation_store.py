"""The automation parts of the Firestore store against the real emulator: the scheduler's
collection-group paging, the users' paging, exactly-once materialization under concurrency,
and rules jobs counting each page once."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import pytest

from valorize.adapters.firestore_store import FirestoreStore
from valorize.adapters.system import SystemClock, Uuid7Ids
from valorize.domain import automation as auto
from valorize.domain.automation import JobStatus, RuleJob, RuleJobPage
from valorize.domain.model import Account, AccountType, ApiToken, Origin, User
from valorize.domain.readmodel import prune, recompute
from valorize.domain.recurrence import Daily, Monthly, Recurrence
from valorize.service.ports import TransactionFilter

pytestmark = pytest.mark.integration
D = dt.date.fromisoformat
NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def store(emulator_env: dict[str, str]) -> FirestoreStore:
    from valorize import bootstrap

    return bootstrap.store()


def new_user(store: FirestoreStore, prefix: str = "auto") -> str:
    # Ids of the form the API issues: the scheduler's cursors over users are checked for it.
    uid = uuid.uuid4().hex
    user = User(uid, f"{prefix}-{uid}@example.com", "A", "BRL", "en", NOW)
    token = ApiToken(uuid.uuid4().hex, uid, "t", NOW)
    store.create_user(user, "hash", [], token, "secret-hash")
    return uid


def new_account(store: FirestoreStore, uid: str) -> str:
    account = Account(
        id=Uuid7Ids().new_id(),
        name="Checking",
        type=AccountType.CHECKING,
        currency="BRL",
        opening_balance=0,
        balance=0,
        created_at=NOW,
        updated_at=NOW,
    )
    store.add_account(uid, account)
    return account.id


def new_recurrence(store: FirestoreStore, uid: str, account_id: str, **over: Any) -> Recurrence:
    fields: dict[str, Any] = {
        "id": Uuid7Ids().new_id(),
        "account_id": account_id,
        "amount": -1_000,
        "currency": "BRL",
        "description": "Gym",
        "schedule": Monthly(31),
        "start": D("2024-01-31"),
        "created_at": NOW,
        "updated_at": NOW,
        **over,
    }
    rec = Recurrence(**fields)
    store.add_recurrence(uid, rec)
    return rec


def test_due_users_page_through_the_collection_group(store: FirestoreStore) -> None:
    # A day no other test uses, so only these recurrences are due on it.
    day = D("1990-06-15")
    users = [new_user(store, "due") for _ in range(3)]
    for uid in users:
        account = new_account(store, uid)
        for _ in range(2):
            new_recurrence(store, uid, account, schedule=Daily(), start=day)
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
    found = [u for u in seen if u in users]
    assert sorted(set(found)) == sorted(users)
    assert pages >= 2
    before = store.users_with_due_recurrences(day - dt.timedelta(days=1), 500, None)
    assert not set(before.items) & set(users)


def test_users_page_by_id(store: FirestoreStore) -> None:
    made = {new_user(store, "page") for _ in range(3)}
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_user_ids(2, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert made <= set(seen) and len(seen) == len(set(seen)) and seen == sorted(seen)


def test_concurrent_runs_create_each_occurrence_once(store: FirestoreStore) -> None:
    uid = new_user(store)
    account = new_account(store, uid)
    rec = new_recurrence(store, uid, account, schedule=Daily(), start=D("2024-01-01"))
    today = D("2024-01-20")
    clock = SystemClock()

    def plan(current: Recurrence) -> auto.Materialization | None:
        return auto.plan(current, today, now=clock.now())

    created: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result = store.materialize(uid, rec.id, plan)
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
    txns = store.list_transactions(uid, TransactionFilter(), 200, None).items
    assert len(txns) == 20 and {t.origin for t in txns} == {Origin.RECURRENCE}
    stored = store.get_account(uid, account)
    assert stored is not None and (stored.balance, stored.transaction_count) == (-20_000, 20)
    again = store.get_recurrence(uid, rec.id)
    assert again is not None and again.materialized_through == today
    assert store.materialize(uid, rec.id, plan) is None
    assert store.due_recurrences(uid, today) == []
    assert [r.id for r in store.due_recurrences(uid, today + dt.timedelta(days=1))] == [rec.id]
    model = prune(recompute(txns))
    assert store.get_months(uid, ["2024-01"])["2024-01"] == model["2024-01"]


def test_a_job_page_counts_once(store: FirestoreStore) -> None:
    uid = new_user(store)
    job = RuleJob(id=Uuid7Ids().new_id(), params={}, created_at=NOW, updated_at=NOW)
    store.add_rule_job(uid, job)
    first = RuleJobPage(0, None, "cursor-1", processed=100, changed=7)
    assert store.start_rule_job_page(uid, job.id, first) == first
    # A redelivery's different view of the page does not replace the record.
    assert store.start_rule_job_page(uid, job.id, RuleJobPage(0, None, None, 99, 3)) == first
    assert store.finish_rule_job_page(uid, job.id, 0, NOW) is True
    assert store.finish_rule_job_page(uid, job.id, 0, NOW) is False
    store.start_rule_job_page(uid, job.id, RuleJobPage(1, "cursor-1", None, 5, 1))
    assert store.finish_rule_job_page(uid, job.id, 1, NOW) is True
    done = store.get_rule_job(uid, job.id)
    assert done is not None
    assert (done.status, done.processed, done.changed, done.pages) == (JobStatus.DONE, 105, 8, 2)
