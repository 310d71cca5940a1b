"""Deleting an account with transactions through the gateway: 202 with its progress, hidden
at once, finished by the Cloud Tasks emulator delivering the accounts function's deletion
tasks, and unharmed by a duplicated delivery.

The test stack deletes VALORIZE_ACCOUNT_DELETE_PAGE (5) transactions per write and hands on
after VALORIZE_ACCOUNT_DELETE_BUDGET_SECONDS (0.3 s) per delivery (tests/conftest.py), so a
few dozen transactions take several pages and deliveries."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from devstack.stack import Stack
from tests.e2e.conftest import Api, assert_problem
from tests.integration.test_readmodel_property import ledger_is_consistent
from valorize.bootstrap import Services
from valorize.config import INTERNAL_HEADER
from valorize.service.ports import NullBus

TRANSACTIONS = 40
DEADLINE = 120.0


@pytest.fixture(scope="module")
def services(emulator_env: dict[str, str]) -> Services:
    from valorize import bootstrap

    return bootstrap.build(bus=NullBus())


def progress_until_done(api: Api, location: str) -> list[dict[str, Any]]:
    """Every distinct progress read until the deletion is done."""
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + DEADLINE
    while True:
        r = api.get(location)
        assert r.status_code == 200, r.text
        body = r.json()
        if not samples or samples[-1] != body:
            samples.append(body)
        if body["state"] == "done":
            return samples
        assert time.monotonic() < deadline, f"not done after {DEADLINE:.0f}s: {samples[-3:]}"
        time.sleep(0.02)


def deliver_again(stack: Stack, user_id: str, account_id: str) -> requests.Response:
    """The first deletion task again, as a duplicated Cloud Tasks delivery."""
    return requests.post(
        stack.urls.functions["accounts"] + "/api/accounts/tasks/delete",
        json={"user_id": user_id, "account_id": account_id, "step": 0},
        headers={INTERNAL_HEADER: stack.secret},
        timeout=60,
    )


def test_a_large_account_is_deleted_by_tasks_with_progress(
    api: Api, other: Api, stack: Stack, services: Services
) -> None:
    account = api.account()
    savings = api.account(name="Savings", type="savings")
    for i in range(TRANSACTIONS - 1):
        api.txn(account["id"], -(i + 1), date=f"2025-0{1 + i % 3}-1{i % 10}")
    r = api.post(
        "/api/transactions/transfers",
        {
            "from_account_id": account["id"],
            "to_account_id": savings["id"],
            "amount": 500,
            "date": "2025-03-02",
            "description": "to savings",
        },
    )
    assert r.status_code == 201, r.text
    kept_side = r.json()["to"]["id"]
    path = f"/api/accounts/{account['id']}"
    me = api.get("/api/auth/me").json()["id"]

    assert_problem(api.delete(path), 409)
    started = api.delete(path + "?confirm=true")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert location == f"{path}/deletion"
    body = started.json()
    assert body["state"] == "running" and body["total"] == TRANSACTIONS
    # Followed from now on, beside the checks below (their requests take time the chain uses).
    watcher = ThreadPoolExecutor(1)
    watched = watcher.submit(progress_until_done, Api(api.base, api.token), location)
    assert body["account_id"] == account["id"] and body["finished_at"] is None

    # Hidden at once: no reads, no new transactions, not another user's to see.
    assert_problem(api.get(path), 404)
    assert [a["id"] for a in api.get("/api/accounts").json()["data"]] == [savings["id"]]
    refused = api.post(
        "/api/transactions",
        {"account_id": account["id"], "amount": -1, "date": "2025-03-01", "description": "x"},
    )
    assert refused.status_code == 422, refused.text
    assert_problem(other.get(location), 404)
    assert_problem(other.delete(path + "?confirm=true"), 404)
    # Asked again while it runs: the same deletion, no second run.
    again = api.delete(path + "?confirm=true")
    assert again.status_code == 202, again.text
    assert again.json()["started_at"] == body["started_at"]
    # A duplicated delivery of the first task, racing the chain.
    duplicate = deliver_again(stack, me, account["id"])
    assert duplicate.status_code == 200, duplicate.text

    samples = watched.result()
    watcher.shutdown()
    done = samples[-1]
    assert (done["deleted"], done["total"]) == (TRANSACTIONS, TRANSACTIONS)
    assert done["finished_at"] is not None
    counts = [s["deleted"] for s in samples]
    assert counts == sorted(counts), samples
    assert any(0 < c < TRANSACTIONS for c in counts), samples  # progress was visible

    assert_problem(api.get(path), 404)
    assert_problem(api.delete(path + "?confirm=true"), 404)
    kept = api.get(f"/api/transactions/{kept_side}").json()
    assert kept["counterpart_id"] is None and kept["amount"] == 500
    assert api.balance(savings["id"]) == 500
    ledger_is_consistent(services, me)
    # A duplicate delivered after the end changes nothing.
    late = deliver_again(stack, me, account["id"])
    assert late.status_code == 200 and late.json()["state"] == "done"
    assert api.get(location).json() == done


def test_an_empty_account_is_deleted_at_once(api: Api) -> None:
    account = api.account()
    r = api.delete(f"/api/accounts/{account['id']}")
    assert r.status_code == 204, r.text
    assert_problem(api.get(f"/api/accounts/{account['id']}"), 404)
    assert api.get(f"/api/accounts/{account['id']}/deletion").json()["state"] == "done"


def test_no_deletion_of_an_account_never_deleted(api: Api) -> None:
    account = api.account()
    assert_problem(api.get(f"/api/accounts/{account['id']}/deletion"), 404)
