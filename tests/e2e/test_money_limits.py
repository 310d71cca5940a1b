"""Balances and dashboard sums stay within ±(2^53-1) minor units, through the running servers.

Each amount was capped at 2^53-1 but sums were not: after ~1,100 maximum amounts a balance
stuck near 2^63-1 (Firestore's Increment saturates at int64) and read wrong, and long before
that JSON clients could not represent it exactly. Every write that changes a balance or a
read-model sum is now refused with a 422 naming the limit when it would take one out of the
range, and what is stored stays exact."""

from __future__ import annotations

from typing import Any

import requests

from devstack.stack import Stack
from tests.e2e.conftest import Api, assert_problem, register
from tests.e2e.test_imports import commit, rows, staged, user_id

MAX = 2**53 - 1


def refused(r: requests.Response, field: str = "amount") -> dict[str, Any]:
    body = assert_problem(r, 422, field)
    assert body["limit"] == MAX, body
    assert "2^53-1" in body["detail"], body
    return body


def summary(api: Api, month: str = "2025-03") -> dict[str, Any]:
    r = api.get(f"/api/dashboard/summary?month={month}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def txn_body(account_id: str, amount: int, **over: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "amount": amount,
        "date": "2025-03-10",
        "description": "Edge",
        **over,
    }


def transfer(api: Api, source: str, destination: str, amount: int) -> requests.Response:
    body = {
        "from_account_id": source,
        "to_account_id": destination,
        "amount": amount,
        "date": "2025-03-11",
        "description": "Move",
    }
    return api.post("/api/transactions/transfers", body)


def test_a_balance_and_the_dashboard_sums_stop_exactly_at_the_limit(base_url: str) -> None:
    api = register(base_url)
    checking = api.account(name="Checking")
    savings = api.account(name="Savings")
    top = api.txn(checking["id"], MAX)
    assert api.balance(checking["id"]) == MAX
    # Create: the balance, then the all-time income (another account: its balance is fine).
    body = refused(api.post("/api/transactions", txn_body(checking["id"], 1)))
    assert "Checking" in body["detail"]
    body = refused(api.post("/api/transactions", txn_body(savings["id"], 1)))
    assert "income" in body["detail"]
    # The expense side, down to -MAX.
    api.txn(savings["id"], -MAX, description="Loss")
    refused(api.post("/api/transactions", txn_body(savings["id"], -1)))
    body = refused(api.post("/api/transactions", txn_body(checking["id"], -1)))
    assert "expense" in body["detail"]
    # Update: toward zero is fine; further out is refused.
    r = api.patch(f"/api/transactions/{top['id']}", {"amount": MAX - 10})
    assert r.status_code == 200, r.text
    small = api.txn(checking["id"], 5)
    refused(api.patch(f"/api/transactions/{small['id']}", {"amount": 11}))
    r = api.patch(f"/api/transactions/{small['id']}", {"amount": 10})
    assert r.status_code == 200, r.text
    # Splitting it into +20 and -10 would add 10 to the income, already at the limit.
    cats = [c["id"] for c in api.categories().values()][:2]
    parts = [{"amount": 20, "category_id": cats[0]}, {"amount": -10, "category_id": cats[1]}]
    refused(api.patch(f"/api/transactions/{small['id']}", {"splits": parts}))
    # Opening balance: the balance moves with it.
    refused(api.patch(f"/api/accounts/{checking['id']}", {"opening_balance": 1}), "opening_balance")
    r = api.patch(f"/api/accounts/{checking['id']}", {"opening_balance": -10})
    assert r.status_code == 200 and r.json()["balance"]["amount"] == MAX - 10, r.text
    assert api.patch(f"/api/accounts/{checking['id']}", {"opening_balance": 0}).status_code == 200
    # Transfers: out of -MAX is refused; MAX between the two is fine, then its sums are full.
    refused(transfer(api, savings["id"], checking["id"], 1))
    assert transfer(api, checking["id"], savings["id"], MAX).status_code == 201
    assert (api.balance(checking["id"]), api.balance(savings["id"])) == (0, 0)
    body = refused(transfer(api, checking["id"], savings["id"], 1))
    assert "transfers" in body["detail"]
    # What is stored is exact.
    s = summary(api)
    got = (s["income"]["amount"], s["expense"]["amount"], s["total_balance"]["amount"])
    assert got == (MAX, MAX, 0), s


def test_splits_deletes_and_recurrences_are_checked_too(base_url: str, stack: Stack) -> None:
    api = register(base_url)
    account = api.account(opening_balance=-MAX)
    up = api.txn(account["id"], MAX, description="Up")
    api.txn(account["id"], -MAX, description="Down")
    assert api.balance(account["id"]) == -MAX
    # Deleting the credit would take the balance to -2 * MAX.
    refused(api.delete(f"/api/transactions/{up['id']}"))
    assert api.get(f"/api/transactions/{up['id']}").status_code == 200
    assert api.balance(account["id"]) == -MAX
    # A split's parts count apart: +MAX and -(MAX-1) add MAX to the income and MAX-1 to the
    # expense; a second one is too much.
    other = register(base_url)
    acc = other.account()
    cats = [c["id"] for c in other.categories().values()][:2]
    parts = [
        {"amount": MAX, "category_id": cats[0]},
        {"amount": -(MAX - 1), "category_id": cats[1]},
    ]
    split = txn_body(acc["id"], 1, splits=parts)
    r = other.post("/api/transactions", split)
    assert r.status_code == 201, r.text
    refused(other.post("/api/transactions", split))
    s = summary(other)
    assert (s["income"]["amount"], s["expense"]["amount"]) == (MAX, MAX - 1)
    # A recurrence's occurrence that would overflow is not created (and is logged).
    third = register(base_url)
    acc = third.account()
    rec = third.post(
        "/api/recurrences",
        {
            "account_id": acc["id"],
            "amount": MAX,
            "description": "Salary",
            "schedule": {"frequency": "monthly", "day": 5},
            "start": "2025-01-05",
        },
    )
    assert rec.status_code == 201, rec.text
    uid = user_id(third)
    automate = stack.urls.functions["automate"]
    headers = {"X-Valorize-Internal": stack.secret}
    for day, created in (("2025-01-05", 1), ("2025-02-05", 0)):
        r = requests.post(
            automate + "/api/automations/user",
            json={"kind": "daily", "date": day, "user_id": uid},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["created"] == created, r.text
    assert r.json()["refused"] == [rec.json()["id"]]
    assert third.balance(acc["id"]) == MAX
    # Not lost: the watermark stays, so a later run creates it once there is room.
    assert third.get(f"/api/recurrences/{rec.json()['id']}").json()["next_due"] == "2025-02-05"


def credits_csv(lines: int, amount: str = "100.00") -> bytes:
    rows_ = "".join(f"2025-03-{1 + i % 28:02d},Deposit {i},{amount}\n" for i in range(lines))
    return ("Date,Description,Amount\n" + rows_).encode()


def test_an_import_that_would_overflow_is_refused_whole_and_stays_reviewable(
    base_url: str,
) -> None:
    api = register(base_url)
    # Room for 10 deposits of 100.00 (10,000 minor units each), not 12.
    account = api.account(opening_balance=MAX - 100_000)
    record = staged(api, credits_csv(12), "deposits.csv", account_id=account["id"])
    assert record["status"] == "ready" and record["counts"]["new"] == 12
    body = refused(api.post(f"/api/imports/{record['id']}/commit"), "rows")
    assert "balance" in body["detail"]
    # Nothing was written, and the import can still be reviewed and committed.
    assert api.get(f"/api/imports/{record['id']}").json()["status"] == "ready"
    assert api.balance(account["id"]) == MAX - 100_000
    assert api.get("/api/transactions", params={"import_id": record["id"]}).json()["data"] == []
    for row in rows(api, record["id"])[10:]:
        r = api.patch(f"/api/imports/{record['id']}/rows/{row['id']}", {"include": False})
        assert r.status_code == 200, r.text
    done = commit(api, record["id"])
    assert done["committed"] == 10
    assert api.balance(account["id"]) == MAX


def test_a_revert_that_would_overflow_is_refused_and_the_import_stays_committed(
    base_url: str,
) -> None:
    api = register(base_url)
    account = api.account(opening_balance=-MAX + 50_000)
    record = staged(api, credits_csv(10), "deposits.csv", account_id=account["id"])
    assert commit(api, record["id"])["committed"] == 10
    # Spend it all again: reverting the deposits would now go 100,000 below the start.
    api.txn(account["id"], -100_000, description="Spent")
    assert api.balance(account["id"]) == -MAX + 50_000
    refused(api.post(f"/api/imports/{record['id']}/revert"), "rows")
    assert api.get(f"/api/imports/{record['id']}").json()["status"] == "committed"
    assert api.balance(account["id"]) == -MAX + 50_000
