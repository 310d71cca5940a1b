"""The reads cached in a scope of their own (service/ports/cache.py `Scope`), through the
real servers: each is a miss then a hit (X-Cache), and every kind of write that changes
what it answers, a task worker's included, makes the next read a fresh miss. A write of one
scope leaves the other scopes' answers cached (a notification arriving or an import's
progress does not throw away the user's ledger reads).

A worker's write is waited for by polling a read that was cached before it: without its
invalidation the cached answer would be served until its TTL, past the deadline."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devstack.stack import Stack
from tests.e2e.conftest import Api, eventually
from tests.e2e.test_automations import Scheduler, recurrence
from tests.e2e.test_imports import fixture, rows, upload
from valorize.config import INTERNAL_HEADER


def seen(api: Api, reads: list[str]) -> list[tuple[str, Any]]:
    answers = [api.get(path) for path in reads]
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    return [(r.headers["X-Cache"], r.json()) for r in answers]


def fresh(api: Api, reads: list[str], why: str) -> list[Any]:
    """Every read a miss (what it answers changed), then a hit with the same answer."""
    after = seen(api, reads)
    assert [c for c, _ in after] == ["miss"] * len(reads), why
    assert seen(api, reads) == [("hit", body) for _, body in after], why
    return [body for _, body in after]


def cached(api: Api, path: str) -> str:
    r = api.get(path)
    assert r.status_code == 200, r.text
    return str(r.headers["X-Cache"])


@pytest.fixture(scope="module")
def scheduler(stack: Stack) -> Scheduler:
    return Scheduler(stack)


def test_the_inbox_is_cached_and_the_notify_worker_and_every_inbox_write_invalidate_it(
    api: Api, stack: Stack
) -> None:
    reads = [
        "/api/notifications",
        "/api/notifications?unread=true",
        "/api/notifications/unread-count",
        "/api/notifications/preferences",
    ]
    fresh(api, reads, "first reads")
    r = api.patch("/api/notifications/preferences", {"large_transaction_threshold": 1_000})
    assert r.status_code == 200, r.text
    assert fresh(api, reads, "preferences")[3]["large_transaction_threshold"] == 1_000

    # A ledger write whose alert travels through the queue to the notify worker.
    account = api.account()
    assert cached(api, "/api/notifications?limit=5") == "miss"
    api.txn(account["id"], -5_000, "2025-03-10", "Laptop")
    eventually(
        lambda: len(api.get("/api/notifications?limit=5").json()["data"]) == 1,
        "the worker's notification, through a cached read of the inbox",
    )
    inbox, unread, count, _ = fresh(api, reads, "the worker's notification")
    [alert] = inbox["data"]
    assert unread["data"] == [alert] and count == {"unread": 1}

    # A notification arriving leaves the ledger's answers cached.
    assert cached(api, "/api/transactions?limit=5") == "miss"
    assert cached(api, "/api/transactions?limit=5") == "hit"
    uid = api.get("/api/auth/me").json()["id"]
    delivered = requests.post(
        stack.urls.functions["notify"] + "/api/notify/deliver",
        json={
            "user_id": uid,
            "id": "import-cached-reads-ready",
            "kind": "import.finished",
            "title": "Ready",
            "body": "Statement ready",
            "data": {},
        },
        headers={INTERNAL_HEADER: stack.secret},
        timeout=30,
    )
    assert delivered.status_code == 200, delivered.text
    assert cached(api, "/api/transactions?limit=5") == "hit"
    assert fresh(api, reads, "a delivery")[2] == {"unread": 2}

    assert api.post(f"/api/notifications/{alert['id']}/read").status_code == 200
    inbox, unread, count, _ = fresh(api, reads, "one marked read")
    assert count == {"unread": 1} and [n["id"] for n in unread["data"]] != [alert["id"]]
    assert api.post("/api/notifications/read-all").status_code == 200
    inbox, unread, count, _ = fresh(api, reads, "all marked read")
    assert count == {"unread": 0} and unread["data"] == []
    assert all(n["read"] for n in inbox["data"])


RULE = {
    "name": "Uber",
    "conditions": [{"field": "description", "op": "contains", "value": "uber"}],
    "actions": [{"action": "add_note", "value": "ride"}],
}


def test_rules_and_their_jobs_are_cached_and_every_rule_write_and_job_page_invalidates(
    api: Api,
) -> None:
    account = api.account()
    api.txn(account["id"], -2_000, "2025-05-02", "UBER *TRIP")
    r = api.post("/api/rules", RULE)
    assert r.status_code == 201, r.text
    rule = r.json()
    reads = ["/api/rules", f"/api/rules/{rule['id']}"]
    fresh(api, reads, "first reads")
    for write in (
        lambda: api.patch(f"/api/rules/{rule['id']}", {"name": "Rides"}),
        lambda: api.post("/api/rules", {**RULE, "name": "First", "position": 0}),
    ):
        assert write().ok
        listed, one = fresh(api, reads, "a rule write")
    assert [x["name"] for x in listed["data"]] == ["First", "Rides"]
    assert (one["name"], one["position"]) == ("Rides", 1)

    # A job: its pages run as tasks, each moving the job's counts.
    job = api.post("/api/rules/apply", {}).json()
    path = f"/api/rules/apply/{job['id']}"
    assert cached(api, path) == "miss"
    done = eventually(
        lambda: (j := api.get(path).json())["status"] == "done" and j,
        "the job, through a cached read of it",
    )
    assert (done["processed"], done["changed"]) == (1, 1)
    assert cached(api, path) == "hit"

    first = next(x for x in listed["data"] if x["name"] == "First")
    assert api.delete(f"/api/rules/{first['id']}").status_code == 204
    listed, one = fresh(api, reads, "a rule deleted")
    assert [x["name"] for x in listed["data"]] == ["Rides"] and one["position"] == 0


def test_recurrences_are_cached_and_every_write_and_automation_run_invalidates_them(
    api: Api, scheduler: Scheduler
) -> None:
    account = api.account(opening_balance=1_000_000)
    rec = recurrence(api, account["id"])
    reads = ["/api/recurrences", f"/api/recurrences/{rec['id']}"]
    listed, one = fresh(api, reads, "first reads")
    assert one["next_due"] == "2024-01-31"

    # The automate worker moves next_due (and creates the occurrences).
    polled = "/api/recurrences?limit=7"
    assert cached(api, polled) == "miss"
    scheduler.run("daily", "2024-03-31")
    eventually(
        lambda: api.get(polled).json()["data"][0]["next_due"] == "2024-04-30",
        "next_due moved by the worker, through a cached read",
    )
    listed, one = fresh(api, reads, "an automation run")
    assert listed["data"] == [one] and one["materialized_through"] == "2024-03-31"

    assert api.patch(reads[1], {"description": "Rent"}).ok
    listed, one = fresh(api, reads, "an update")
    assert one["description"] == "Rent" and listed["data"] == [one]
    assert api.post("/api/recurrences", {**rec_body(account["id"]), "start": "2025-01-31"}).ok
    listed, _ = fresh(api, reads, "a create")
    assert len(listed["data"]) == 2
    assert api.delete(reads[1]).status_code == 204
    assert cached(api, reads[0]) == "miss"
    assert api.get(reads[1]).status_code == 404


def rec_body(account_id: str) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "amount": -150_000,
        "description": "Aluguel",
        "schedule": {"frequency": "monthly", "day": 31},
    }


def settled(api: Api, import_id: str, states: tuple[str, ...]) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        listed = api.get("/api/imports?limit=7").json()["data"]
        [record] = [i for i in listed if i["id"] == import_id]
        return dict(record) if record["status"] in states else None

    return eventually(probe, f"the import {states}")


def test_imports_are_cached_and_the_workers_and_every_import_write_invalidate_them(
    api: Api,
) -> None:
    account = api.account()
    fresh(api, ["/api/imports"], "first read")
    # The ledger's answers, cached before the import.
    ledger = ["/api/accounts", "/api/transactions?limit=5"]
    fresh(api, ledger, "the ledger's first reads")

    r = upload(api, fixture("nubank_account.csv"), "n.csv", account_id=account["id"])
    assert r.status_code == 202, r.text
    import_id = r.json()["id"]
    # Polled through the cache (another key than the reads below, which are then misses):
    # each state and progress tick the worker writes is seen.
    record = settled(api, import_id, ("ready", "failed"))
    assert record["status"] == "ready", record
    one = f"/api/imports/{import_id}"
    reads = ["/api/imports", one, f"/api/imports/{import_id}/rows"]
    listed, got, staged = fresh(api, reads, "the staged import")
    assert listed["data"] == [got] and got["counts"]["new"] == 4
    # Staging it (the worker's states, progress and rows) left the ledger's answers cached.
    assert [c for c, _ in seen(api, ledger)] == ["hit", "hit"]

    first = staged["data"][0]
    r = api.patch(f"/api/imports/{import_id}/rows/{first['id']}", {"include": False})
    assert r.status_code == 200, r.text
    _, _, staged = fresh(api, reads, "a row reviewed")
    assert staged["data"][0]["include"] is False
    assert rows(api, import_id)[0]["include"] is False

    r = api.post(f"/api/imports/{import_id}/commit")
    assert r.status_code in (200, 202), r.text
    committed = settled(api, import_id, ("committed",))
    assert committed["committed"] == 3
    listed, got, _ = fresh(api, reads, "the commit")
    assert got["status"] == "committed" and listed["data"] == [got]
    # The commit moved the ledger: its answers are fresh too.
    accounts, transactions = fresh(api, ledger, "the commit's transactions")
    assert accounts["data"][0]["transaction_count"] == 3 and len(transactions["data"]) == 3


def test_the_profile_and_tokens_are_cached_and_every_token_change_invalidates_them(
    api: Api,
) -> None:
    reads = ["/api/auth/me", "/api/auth/tokens"]
    fresh(api, reads, "first reads")
    r = api.post("/api/auth/tokens", {"name": "ci"})
    assert r.status_code == 201, r.text
    issued = r.json()
    _, tokens = fresh(api, reads, "a token issued")
    [ci] = [t for t in tokens["data"] if t["id"] == issued["id"]]
    assert ci["last_used_at"] is None

    # Its first use writes its last_used_at, in the request that reads it.
    used = api.get("/api/auth/tokens", token=issued["token"])
    assert used.status_code == 200 and used.headers["X-Cache"] == "miss", used.text
    [ci] = [t for t in used.json()["data"] if t["id"] == issued["id"]]
    assert ci["last_used_at"] is not None
    assert seen(api, reads)[1] == ("hit", used.json())

    login = api.post(
        "/api/auth/login",
        {"email": api.email, "password": "correct horse battery"},  # type: ignore[attr-defined]
    )
    assert login.status_code == 200, login.text
    _, tokens = fresh(api, reads, "a login")
    assert [t["name"] for t in tokens["data"]].count("login") == 1

    assert api.delete(f"/api/auth/tokens/{issued['id']}").status_code == 204
    _, tokens = fresh(api, reads, "a token revoked")
    assert issued["id"] not in [t["id"] for t in tokens["data"]]


def test_an_account_deletions_progress_is_cached_and_each_page_of_its_worker_invalidates(
    api: Api,
) -> None:
    account = api.account()
    kept = api.account(name="Savings")
    for n in range(12):
        api.txn(account["id"], -(n + 1), f"2025-03-{n + 10}")
    ledger = ["/api/accounts", "/api/transactions?limit=50", "/api/dashboard/summary?month=2025-03"]
    fresh(api, ledger, "first reads")
    r = api.delete(f"/api/accounts/{account['id']}?confirm=true")
    assert r.status_code == 202, r.text
    path = f"/api/accounts/{account['id']}/deletion"
    # Polled through the cache: each page the worker deletes is seen, up to the end.
    samples: list[int] = []

    def done() -> bool:
        body = api.get(path).json()
        samples.append(body["deleted"])
        return bool(body["state"] == "done")

    eventually(done, "the deletion, through a cached read of its progress")
    assert samples == sorted(samples) and samples[-1] == 12
    assert cached(api, path) == "hit"
    accounts, transactions, summary = fresh(api, ledger, "the deletion")
    assert [a["id"] for a in accounts["data"]] == [kept["id"]]
    assert transactions["data"] == [] and summary["expense"]["amount"] == 0
