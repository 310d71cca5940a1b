"""Twelve writers at one document, for every write route, through the gateway (a
double-submitting frontend, two tabs, a retrying client).

Each scenario sends WRITERS requests at once (the function serves 8 at a time) with different
bodies and checks that:

- nothing is a 5xx; every other non-2xx is a problem+json with a status the route documents
  (404 for the losers of a delete, 409 for a real conflict), or a contention answer (409 or
  503 with Retry-After) that a client may retry;
- the final state equals one of the successful writes, never a mix of two;
- balances and the dashboard's read models still equal the sums of the transactions.

The number of 5xx per route is printed at the end of the module (before/after figures)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from devstack.stack import Stack
from tests.e2e.conftest import Api
from tests.integration.test_readmodel_property import ledger_is_consistent
from valorize.bootstrap import Services
from valorize.service.ports import NullBus

WRITERS = 12
CONTENTION = (409, 503)
FIVE_XX: dict[str, int] = {}
# Contention answers (409/503 with Retry-After) per route: allowed, but should be rare.
RETRY_LATER: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n5xx and retry-later answers per route under concurrent writers:")
        for route, count in FIVE_XX.items():
            print(f"  {count:4d}  {RETRY_LATER.get(route, 0):4d}  {route}")


# --- helpers ----------------------------------------------------------------------------------


def burst(api: Api, calls: Sequence[Callable[[Api], requests.Response]]) -> list[requests.Response]:
    """Run every call at once, each writer on its own connection."""
    clients = [Api(api.base, api.token) for _ in calls]
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda pair: pair[1](pair[0]), zip(clients, calls, strict=True)))


def settled(
    route: str, responses: Sequence[requests.Response], expected: Collection[int] = ()
) -> list[requests.Response]:
    """The successful answers, after checking every other one is a clean problem."""
    five = [r for r in responses if r.status_code >= 500]
    FIVE_XX[route] = FIVE_XX.get(route, 0) + len(five)
    assert not five, (
        f"{route}: {len(five)} x {five[0].status_code} of {len(responses)}: {five[0].text[:300]}"
    )
    ok = []
    for r in responses:
        if r.ok:
            ok.append(r)
            continue
        assert r.headers["Content-Type"].startswith("application/problem+json"), r.text
        if r.status_code in CONTENTION and "Retry-After" in r.headers:
            assert int(r.headers["Retry-After"]) >= 1
            RETRY_LATER[route] = RETRY_LATER.get(route, 0) + 1
            continue
        assert r.status_code in expected, (route, r.status_code, r.text)
    return ok


def patched(
    route: str, api: Api, path: str, bodies: Sequence[Any], expected: Collection[int] = ()
) -> list[requests.Response]:
    """One PATCH per body, all at once."""
    return settled(route, burst(api, [lambda w, b=b: w.patch(path, b) for b in bodies]), expected)


def deleted(route: str, api: Api, path: str) -> list[requests.Response]:
    """WRITERS deletes of one thing at once: the losers may only be 404s."""
    return settled(route, burst(api, [lambda w: w.delete(path)] * WRITERS), {404})


def user_id(api: Api) -> str:
    return str(api.get("/api/auth/me").json()["id"])


@pytest.fixture(scope="module")
def services(emulator_env: dict[str, str]) -> Services:
    from valorize import bootstrap

    return bootstrap.build(bus=NullBus())


def transfer(api: Api, source: str, target: str, amount: int) -> requests.Response:
    body = {
        "from_account_id": source,
        "to_account_id": target,
        "amount": amount,
        "date": "2025-03-02",
        "description": "move",
    }
    return api.post("/api/transactions/transfers", body)


# --- accounts ---------------------------------------------------------------------------------


def test_patch_one_account(api: Api, services: Services) -> None:
    account = api.account(opening_balance=1_000)
    path = f"/api/accounts/{account['id']}"
    bodies = [
        {"name": f"Account {i}", "opening_balance": 1_000 * i, "low_balance_threshold": i}
        for i in range(WRITERS)
    ]
    # Transactions land on the account meanwhile (the balance moves by increments).
    calls: list[Callable[[Api], requests.Response]] = [
        lambda w, b=b: w.patch(path, b) for b in bodies
    ]
    calls += [
        lambda w, i=i: w.post(
            "/api/transactions",
            {
                "account_id": account["id"],
                "amount": -(i + 1),
                "date": "2025-03-01",
                "description": f"t{i}",
            },
        )
        for i in range(4)
    ]
    ok = settled("PATCH /api/accounts/{id}", burst(api, calls))
    patched = [r.json() for r in ok if r.request.method == "PATCH"]
    assert patched
    final = api.get(path).json()
    winner = next(b for b in bodies if b["name"] == final["name"])
    assert final["opening_balance"]["amount"] == winner["opening_balance"]
    assert final["low_balance_threshold"] == winner["low_balance_threshold"]
    ledger_is_consistent(services, user_id(api))


def test_delete_one_account(api: Api, services: Services) -> None:
    account = api.account()
    other = api.account(name="Savings")
    for i in range(3):
        api.txn(account["id"], -100 * (i + 1), description=f"t{i}")
    r = transfer(api, account["id"], other["id"], 500)
    assert r.status_code == 201, r.text
    path = f"/api/accounts/{account['id']}?confirm=true"
    ok = deleted("DELETE /api/accounts/{id}", api, path)
    # One deletion: every racing DELETE that found it running answers it (202).
    started = [r for r in ok if r.status_code == 202]
    assert started and len({r.json()["started_at"] for r in started}) == 1
    assert api.get(f"/api/accounts/{account['id']}").status_code == 404
    assert api.deletion_done(account["id"])["deleted"] == 4
    ledger_is_consistent(services, user_id(api))


def test_create_accounts_with_one_idempotency_key(api: Api) -> None:
    body = {"name": "Checking", "type": "checking", "currency": "BRL"}
    headers = {"Idempotency-Key": "double-submit"}
    ok = settled(
        "POST /api/accounts (one Idempotency-Key)",
        burst(api, [lambda w: w.post("/api/accounts", body, headers=headers)] * WRITERS),
    )
    assert len({r.json()["id"] for r in ok}) == 1
    assert len(api.get("/api/accounts").json()["data"]) == 1


# --- categories -------------------------------------------------------------------------------


def test_rename_one_category(api: Api) -> None:
    r = api.post("/api/categories", {"name": "Pets", "color": "green"})
    assert r.status_code == 201, r.text
    path = f"/api/categories/{r.json()['id']}"
    names = [f"Pets {i}" for i in range(WRITERS)]
    ok = settled(
        "PATCH /api/categories/{id}",
        burst(api, [lambda w, n=n: w.patch(path, {"name": n}) for n in names]),
        {409},
    )
    assert ok
    final = api.get(path).json()["name"]
    assert final in {x.json()["name"] for x in ok}
    # Only the final name is taken: every other one is free again.
    for name in ["Pets", *names]:
        if name != final:
            r = api.post("/api/categories", {"name": name, "color": "green"})
            assert r.status_code == 201, (name, r.text)
    r = api.post("/api/categories", {"name": final, "color": "green"})
    assert r.status_code == 409, r.text


def test_create_categories_with_one_name(api: Api) -> None:
    body = {"name": "Garden", "color": "green"}
    ok = settled(
        "POST /api/categories (one name)",
        burst(api, [lambda w: w.post("/api/categories", body)] * WRITERS),
        {409},
    )
    assert len(ok) == 1
    assert (
        sum(c["name"] == "Garden" for c in api.get("/api/categories?limit=200").json()["data"]) == 1
    )


def test_delete_one_category_in_use(api: Api, services: Services) -> None:
    cats = api.categories()
    food, fun = cats["Alimentação"]["id"], cats["Lazer"]["id"]
    account = api.account()
    api.txn(account["id"], -1_000, category_id=food)
    api.txn(
        account["id"],
        -900,
        splits=[{"category_id": food, "amount": -600}, {"category_id": fun, "amount": -300}],
    )
    path = f"/api/categories/{food}?reassign_to={fun}"
    ok = deleted("DELETE /api/categories/{id}", api, path)
    assert ok
    assert api.get(f"/api/categories/{food}").status_code == 404
    ledger_is_consistent(services, user_id(api))


# --- transactions -----------------------------------------------------------------------------


def test_patch_one_transaction(api: Api, services: Services) -> None:
    account = api.account(opening_balance=10_000)
    txn = api.txn(account["id"], -100)
    path = f"/api/transactions/{txn['id']}"
    bodies = [
        {"amount": -(i + 1) * 100, "description": f"Edit {i}", "date": f"2025-0{1 + i % 3}-15"}
        for i in range(WRITERS)
    ]
    ok = patched("PATCH /api/transactions/{id}", api, path, bodies)
    assert ok
    final = api.get(path).json()
    winner = next(b for b in bodies if b["description"] == final["description"])
    assert (final["amount"], final["date"]) == (winner["amount"], winner["date"])
    assert api.balance(account["id"]) == 10_000 + winner["amount"]
    ledger_is_consistent(services, user_id(api))


def test_patch_one_split_transaction(api: Api, services: Services) -> None:
    cats = api.categories()
    food, fun = cats["Alimentação"]["id"], cats["Lazer"]["id"]
    account = api.account()
    txn = api.txn(
        account["id"],
        -1_000,
        splits=[{"category_id": food, "amount": -500}, {"category_id": fun, "amount": -500}],
    )
    path = f"/api/transactions/{txn['id']}"
    bodies = [
        {
            "amount": -1_000 - i,
            "splits": [
                {"category_id": food, "amount": -1 - i},
                {"category_id": fun, "amount": -999},
            ],
        }
        for i in range(WRITERS)
    ]
    ok = patched("PATCH /api/transactions/{id} (splits)", api, path, bodies)
    assert ok
    final = api.get(path).json()
    assert final["amount"] in {b["amount"] for b in bodies}
    assert [s["amount"] for s in final["splits"]] == [
        final["amount"] + 999,
        -999,
    ]
    ledger_is_consistent(services, user_id(api))


def test_patch_and_delete_one_transfer(api: Api, services: Services) -> None:
    a, b = api.account(opening_balance=50_000), api.account(name="Savings")
    r = transfer(api, a["id"], b["id"], 1_000)
    assert r.status_code == 201, r.text
    path = f"/api/transactions/{r.json()['from']['id']}"
    bodies = [{"amount": -(i + 1) * 1_000, "description": f"move {i}"} for i in range(WRITERS)]
    ok = patched("PATCH /api/transactions/{id} (transfer)", api, path, bodies, {422})
    if ok:
        final = api.get(path).json()
        assert final["amount"] in {x["amount"] for x in bodies}
    ledger_is_consistent(services, user_id(api))
    ok = deleted("DELETE /api/transactions/{id} (transfer)", api, path)
    assert ok
    assert api.balance(a["id"]) == 50_000 and api.balance(b["id"]) == 0
    ledger_is_consistent(services, user_id(api))


def test_delete_one_transaction(api: Api, services: Services) -> None:
    account = api.account(opening_balance=5_000)
    txn = api.txn(account["id"], -1_234)
    path = f"/api/transactions/{txn['id']}"
    ok = deleted("DELETE /api/transactions/{id}", api, path)
    assert ok
    assert api.balance(account["id"]) == 5_000
    ledger_is_consistent(services, user_id(api))


def test_create_transactions_and_transfers_on_one_account(api: Api, services: Services) -> None:
    a, b = api.account(), api.account(name="Savings")
    calls: list[Callable[[Api], requests.Response]] = [
        lambda w, i=i: w.post(
            "/api/transactions",
            {"account_id": a["id"], "amount": -(i + 1), "date": "2025-03-03", "description": "x"},
        )
        for i in range(WRITERS // 2)
    ]
    calls += [lambda w, i=i: transfer(w, a["id"], b["id"], 100 + i) for i in range(WRITERS // 2)]
    ok = settled("POST /api/transactions + /transfers (one account)", burst(api, calls))
    assert len(ok) == WRITERS
    ledger_is_consistent(services, user_id(api))


def test_create_transactions_with_one_idempotency_key(api: Api, services: Services) -> None:
    account = api.account()
    body = {"account_id": account["id"], "amount": -500, "date": "2025-03-03", "description": "x"}
    headers = {"Idempotency-Key": "double-submit"}
    ok = settled(
        "POST /api/transactions (one Idempotency-Key)",
        burst(api, [lambda w: w.post("/api/transactions", body, headers=headers)] * WRITERS),
    )
    assert len({r.json()["id"] for r in ok}) == 1
    assert api.balance(account["id"]) == -500
    ledger_is_consistent(services, user_id(api))


# --- budgets ----------------------------------------------------------------------------------


def envelope(api: Api, name: str) -> str:
    r = api.post("/api/budgets", {"category_id": api.categories()[name]["id"]})
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def brl(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "BRL"}


def test_create_rename_and_delete_one_budget(api: Api) -> None:
    food = api.categories()["Alimentação"]["id"]
    ok = settled(
        "POST /api/budgets (one category)",
        burst(api, [lambda w: w.post("/api/budgets", {"category_id": food})] * WRITERS),
    )
    assert sorted(r.status_code for r in ok) == [200] * (WRITERS - 1) + [201]
    assert len({r.json()["id"] for r in ok}) == 1
    path = f"/api/budgets/{ok[0].json()['id']}"
    names = [f"Food {i}" for i in range(WRITERS)]
    ok = settled(
        "PATCH /api/budgets/{id}",
        burst(api, [lambda w, n=n: w.patch(path, {"name": n}) for n in names]),
    )
    assert ok and api.get(path).json()["name"] in names
    ok = deleted("DELETE /api/budgets/{id}", api, path)
    assert ok and api.get(path).status_code == 404


def test_set_one_months_income(api: Api) -> None:
    amounts = [100_000 + i for i in range(WRITERS)]
    ok = settled(
        "POST /api/budgets/income",
        burst(
            api,
            [
                lambda w, a=a: w.post("/api/budgets/income", {"month": "2025-03", "amount": brl(a)})
                for a in amounts
            ],
        ),
    )
    assert ok
    summary = api.get("/api/budgets/summary?month=2025-03").json()
    assert summary["income"]["amount"] in amounts


def test_allocate_one_envelope(api: Api) -> None:
    food = envelope(api, "Alimentação")
    assert api.post("/api/budgets/income", {"month": "2025-03", "amount": brl(100_000)}).ok
    amounts = [1_000 * (i + 1) for i in range(WRITERS)]
    ok = settled(
        "POST /api/budgets/allocate",
        burst(
            api,
            [
                lambda w, a=a: w.post(
                    "/api/budgets/allocate",
                    {"budget_id": food, "month": "2025-03", "amount": brl(a)},
                )
                for a in amounts
            ],
        ),
    )
    assert ok
    final = api.get(f"/api/budgets/{food}").json()
    assert final["allocations"]["2025-03"]["amount"] in amounts


def test_allocations_racing_for_one_income_respect_the_cap(api: Api) -> None:
    names = ["Alimentação", "Lazer", "Transporte", "Compras"]
    ids = [envelope(api, n) for n in names]
    assert api.post("/api/budgets/income", {"month": "2025-03", "amount": brl(3_000)}).ok
    calls = [
        lambda w, b=b: w.post(
            "/api/budgets/allocate", {"budget_id": b, "month": "2025-03", "amount": brl(1_000)}
        )
        for b in ids
        for _ in range(WRITERS // len(ids))
    ]
    ok = settled("POST /api/budgets/allocate (one income)", burst(api, calls), {422})
    assert ok
    summary = api.get("/api/budgets/summary?month=2025-03").json()
    assert summary["assigned"]["amount"] <= 3_000
    assert summary["assigned"]["amount"] == 1_000 * len({r.json()["id"] for r in ok})


def test_move_between_two_envelopes(api: Api) -> None:
    food, fun = envelope(api, "Alimentação"), envelope(api, "Lazer")
    assert api.post("/api/budgets/income", {"month": "2025-03", "amount": brl(100_000)}).ok
    assert api.post(
        "/api/budgets/allocate", {"budget_id": food, "month": "2025-03", "amount": brl(50_000)}
    ).ok
    body = {"from_budget_id": food, "to_budget_id": fun, "month": "2025-03", "amount": brl(1_000)}
    ok = settled(
        "POST /api/budgets/move",
        burst(api, [lambda w: w.post("/api/budgets/move", body)] * WRITERS),
    )
    summary = api.get("/api/budgets/summary?month=2025-03").json()
    assert summary["assigned"]["amount"] == 50_000
    overview = {
        e["budget_id"]: e["budgeted"]["amount"]
        for e in api.get("/api/budgets/overview?month=2025-03").json()["envelopes"]
    }
    assert overview[fun] == 1_000 * len(ok)
    assert overview[food] == 50_000 - 1_000 * len(ok)


# --- rules ------------------------------------------------------------------------------------


def rule(name: str, **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "conditions": [{"field": "description", "op": "contains", "value": name}],
        "actions": [{"action": "add_note", "value": name}],
        **over,
    }


def listed(api: Api) -> list[dict[str, Any]]:
    """Every rule, in run order (one page: a user has at most 200)."""
    r = api.get("/api/rules", params={"limit": 200})
    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text
    return list(r.json()["data"])


def test_create_rules_in_parallel(api: Api) -> None:
    ok = settled(
        "POST /api/rules",
        burst(api, [lambda w, i=i: w.post("/api/rules", rule(f"r{i}")) for i in range(WRITERS)]),
    )
    assert len(ok) == WRITERS
    first = listed(api)
    assert [x["position"] for x in first] == list(range(WRITERS))
    assert first == listed(api)


def test_199_rule_creates_eight_at_a_time_all_succeed_and_the_limit_holds(api: Api) -> None:
    clients = [Api(api.base, api.token) for _ in range(8)]

    def create(i: int) -> requests.Response:
        return clients[i % 8].post("/api/rules", rule(f"rule {i:03d}"))

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(199)))
    ok = settled("POST /api/rules (199, 8 at a time)", answers)
    assert len(ok) == 199
    first = listed(api)
    assert [x["position"] for x in first] == list(range(199))
    assert sorted(x["name"] for x in first) == [f"rule {i:03d}" for i in range(199)]
    assert [x["id"] for x in listed(api)] == [x["id"] for x in first]
    # The 200th fits, the 201st does not, however many race for it.
    more = burst(api, [lambda w, i=i: w.post("/api/rules", rule(f"extra {i}")) for i in range(8)])
    ok = settled("POST /api/rules (at the limit)", more, {422})
    assert len(ok) == 1
    assert len(listed(api)) == 200
    # Deleting one (twelve times at once) frees exactly one place.
    path = f"/api/rules/{first[0]['id']}"
    assert deleted("DELETE /api/rules/{id}", api, path)
    more = burst(api, [lambda w, i=i: w.post("/api/rules", rule(f"again {i}")) for i in range(8)])
    assert len(settled("POST /api/rules (at the limit)", more, {422})) == 1
    assert len(listed(api)) == 200


def test_patch_one_rule(api: Api) -> None:
    for i in range(5):
        assert api.post("/api/rules", rule(f"r{i}")).status_code == 201
    target = listed(api)[2]
    path = f"/api/rules/{target['id']}"
    bodies = [
        {"name": f"edited {i}", "position": i % 5, "enabled": i % 2 == 0} for i in range(WRITERS)
    ]
    ok = patched("PATCH /api/rules/{id}", api, path, bodies)
    assert ok
    rules = listed(api)
    assert [x["position"] for x in rules] == list(range(5))
    final = next(x for x in rules if x["id"] == target["id"])
    winner = next(b for b in bodies if b["name"] == final["name"])
    assert (final["position"], final["enabled"]) == (winner["position"], winner["enabled"])


def test_reorder_rules_concurrently(api: Api) -> None:
    for i in range(WRITERS):
        assert api.post("/api/rules", rule(f"r{i}")).status_code == 201
    before = listed(api)
    ok = settled(
        "PATCH /api/rules/{id} (reorder)",
        burst(
            api,
            [lambda w, x=x: w.patch(f"/api/rules/{x['id']}", {"position": 0}) for x in before],
        ),
    )
    assert len(ok) == WRITERS
    after = listed(api)
    assert [x["position"] for x in after] == list(range(WRITERS))
    assert sorted(x["id"] for x in after) == sorted(x["id"] for x in before)
    assert after == listed(api)


# --- recurrences ------------------------------------------------------------------------------


def test_patch_and_delete_one_recurrence(api: Api) -> None:
    account = api.account()
    r = api.post(
        "/api/recurrences",
        {
            "account_id": account["id"],
            "amount": -1_000,
            "description": "Rent",
            "schedule": {"frequency": "monthly", "day": 5},
            "start": "2030-01-01",
        },
    )
    assert r.status_code == 201, r.text
    path = f"/api/recurrences/{r.json()['id']}"
    bodies = [
        {
            "amount": -(i + 1),
            "description": f"Rent {i}",
            "schedule": {"frequency": "monthly", "day": i + 1},
        }
        for i in range(WRITERS)
    ]
    ok = patched("PATCH /api/recurrences/{id}", api, path, bodies)
    assert ok
    final = api.get(path).json()
    winner = next(b for b in bodies if b["description"] == final["description"])
    assert final["amount"] == winner["amount"]
    assert final["schedule"]["day"] == winner["schedule"]["day"]
    ok = deleted("DELETE /api/recurrences/{id}", api, path)
    assert ok and api.get(path).status_code == 404


# --- notifications ----------------------------------------------------------------------------


def test_read_one_notification_and_read_all(api: Api, stack: Stack) -> None:
    from valorize.config import INTERNAL_HEADER

    url = stack.urls.functions["notify"] + "/api/notify/deliver"
    me = user_id(api)
    for i in range(5):
        body = {
            "user_id": me,
            "id": f"n{i}",
            "kind": "import.finished",
            "title": "t",
            "body": "b",
            "data": {},
        }
        assert requests.post(url, json=body, headers={INTERNAL_HEADER: stack.secret}, timeout=30).ok
    ok = settled(
        "POST /api/notifications/{id}/read",
        burst(api, [lambda w: w.post("/api/notifications/n0/read")] * WRITERS),
    )
    assert len(ok) == WRITERS
    # Read once: every answer, and the stored one, keep when it was first read.
    assert len({r.json()["read_at"] for r in ok}) == 1
    assert api.post("/api/notifications/n0/read").json()["read_at"] == ok[0].json()["read_at"]
    ok = settled(
        "POST /api/notifications/read-all",
        burst(api, [lambda w: w.post("/api/notifications/read-all")] * WRITERS),
    )
    assert len(ok) == WRITERS
    assert api.get("/api/notifications/unread-count").json() == {"unread": 0}


def test_patch_notification_preferences(api: Api) -> None:
    bodies = [
        {"large_transaction_threshold": 1_000 + i, "email": {"import.finished": i % 2 == 0}}
        for i in range(WRITERS)
    ]
    ok = settled(
        "PATCH /api/notifications/preferences",
        burst(api, [lambda w, b=b: w.patch("/api/notifications/preferences", b) for b in bodies]),
    )
    assert ok
    final = api.get("/api/notifications/preferences").json()
    winner = next(
        b
        for b in bodies
        if b["large_transaction_threshold"] == final["large_transaction_threshold"]
    )
    assert final["email"]["import.finished"] == winner["email"]["import.finished"]


# --- auth tokens ------------------------------------------------------------------------------


def test_register_one_email(anon: Api) -> None:
    body = {
        "email": f"twice-{time.time_ns()}@example.com",
        "password": "correct horse battery",
        "name": "Twice",
        "preferred_currency": "BRL",
    }
    ok = settled(
        "POST /api/auth/register (one email)",
        burst(anon, [lambda w: w.post("/api/auth/register", body)] * WRITERS),
        {409},
    )
    assert len(ok) == 1


def test_create_and_revoke_one_token(api: Api) -> None:
    headers = {"Idempotency-Key": "double-submit"}
    ok = settled(
        "POST /api/auth/tokens (one Idempotency-Key)",
        burst(
            api, [lambda w: w.post("/api/auth/tokens", {"name": "cli"}, headers=headers)] * WRITERS
        ),
    )
    assert len({r.json()["id"] for r in ok}) == 1
    token_id = ok[0].json()["id"]
    ok = settled(
        "DELETE /api/auth/tokens/{id}",
        burst(api, [lambda w: w.delete(f"/api/auth/tokens/{token_id}")] * WRITERS),
        {404},
    )
    assert ok
    assert token_id not in {t["id"] for t in api.get("/api/auth/tokens").json()["data"]}


# --- imports ----------------------------------------------------------------------------------


CSV = "date,description,amount\n" + "".join(
    f"2025-03-{d:02d},Purchase {d},-{d}00.00\n" for d in range(1, 11)
)


def staged(api: Api, account_id: str) -> dict[str, Any]:
    r = api.request(
        "POST",
        "/api/imports",
        files={"file": ("s.csv", io.BytesIO(CSV.encode()), "text/csv")},
        data={"account_id": account_id, "preset": "generic"},
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = api.get(f"/api/imports/{r.json()['id']}").json()
        if body["status"] in ("ready", "failed"):
            assert body["status"] == "ready", body
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_review_commit_and_revert_one_import(api: Api, services: Services) -> None:
    account = api.account(opening_balance=1_000)
    record = staged(api, account["id"])
    base = f"/api/imports/{record['id']}"
    row = api.get(f"{base}/rows").json()["data"][0]["id"]
    ok = settled(
        "PATCH /api/imports/{id}/rows/{row}",
        burst(
            api,
            [
                lambda w, i=i: w.patch(f"{base}/rows/{row}", {"include": i % 2 == 0})
                for i in range(WRITERS)
            ],
        ),
    )
    assert ok
    included = api.get(f"{base}/rows").json()["data"][0]["include"]
    assert included in {r.json()["include"] for r in ok}
    ok = settled(
        "POST /api/imports/{id}/commit",
        burst(api, [lambda w: w.post(f"{base}/commit")] * WRITERS),
        {409},
    )
    assert ok
    done = api.get(base).json()
    assert done["status"] == "committed" and done["committed"] == (10 if included else 9)
    ledger_is_consistent(services, user_id(api))
    ok = settled(
        "POST /api/imports/{id}/revert",
        burst(api, [lambda w: w.post(f"{base}/revert")] * WRITERS),
        {409},
    )
    assert ok
    assert api.get(base).json()["status"] == "reverted"
    assert api.balance(account["id"]) == 1_000
    ledger_is_consistent(services, user_id(api))
