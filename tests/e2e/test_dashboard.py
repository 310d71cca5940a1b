"""The dashboard's numbers on a known dataset, the cache (hit, miss, invalidation), and
reads that keep answering correctly while Redis is down."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devstack.stack import Stack
from tests.e2e.conftest import Api, assert_problem
from valorize.entrypoints import dashboard_schemas as q


def brl(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "BRL"}


@pytest.fixture
def ledger(api: Api) -> dict[str, Any]:
    """A user with known history (BRL preferred, one USD account)."""
    cats = api.categories()
    food, transport = cats["Alimentação"]["id"], cats["Transporte"]["id"]
    fun, salary = cats["Lazer"]["id"], cats["Receitas"]["id"]
    checking = api.account(name="Checking", opening_balance=100_000)
    card = api.account(name="Card", type="credit")
    wallet = api.account(name="Wallet", currency="USD", type="cash", opening_balance=5_000)
    c, k, w = checking["id"], card["id"], wallet["id"]
    api.txn(c, 500_000, "2025-01-05", "Salário", category_id=salary)
    api.txn(c, -20_000, "2025-01-10", "Mercado", category_id=food)
    api.txn(c, 500_000, "2025-03-05", "Salário", category_id=salary)
    api.txn(k, -30_000, "2025-03-07", "Uber", category_id=transport)
    api.txn(
        c,
        -10_000,
        "2025-03-08",
        "Feira",
        splits=[{"category_id": food, "amount": -6_000}, {"category_id": fun, "amount": -4_000}],
    )
    loose = api.txn(c, -5_000, "2025-03-09", "Saque")
    r = api.post(
        "/api/transactions/transfers",
        {
            "from_account_id": c,
            "to_account_id": k,
            "amount": 20_000,
            "date": "2025-03-10",
            "description": "Pagamento fatura",
        },
    )
    assert r.status_code == 201, r.text
    api.txn(w, -1_500, "2025-03-12", "Lunch", category_id=food)
    api.txn(c, -1_000, "2025-03-31", "Cinema", category_id=fun)
    return {
        "checking": c,
        "card": k,
        "wallet": w,
        "food": food,
        "transport": transport,
        "fun": fun,
        "salary": salary,
        "loose": loose["id"],
    }


def get(api: Api, path: str, model: type, cache: str | None = None) -> dict[str, Any]:
    r = api.get(path)
    assert r.status_code == 200, r.text
    model.model_validate(r.json())  # the answer matches its documented shape
    if cache is not None:
        assert r.headers["X-Cache"] == cache, (path, r.headers.get("X-Cache"))
    return dict(r.json())


def test_summary_of_a_month(api: Api, ledger: dict[str, Any]) -> None:
    s = get(api, "/api/dashboard/summary?month=2025-03", q.SummaryOut)
    assert s["currency"] == "BRL" and s["month"] == "2025-03"
    assert s["total_balance"] == brl(1_044_000 - 10_000)
    assert (s["income"], s["expense"], s["net"]) == (brl(500_000), brl(46_000), brl(454_000))
    usd = s["other_currencies"]
    assert [u["currency"] for u in usd] == ["USD"]
    assert usd[0]["total_balance"] == {"amount": 3_500, "currency": "USD"}
    assert usd[0]["expense"] == {"amount": 1_500, "currency": "USD"}


def test_trend_fills_empty_months_and_crosses_years(api: Api, ledger: dict[str, Any]) -> None:
    t = get(api, "/api/dashboard/trend?end=2025-03&months=3", q.TrendOut)
    assert [(m["month"], m["income"]["amount"], m["expense"]["amount"]) for m in t["months"]] == [
        ("2025-01", 500_000, 20_000),
        ("2025-02", 0, 0),
        ("2025-03", 500_000, 46_000),
    ]
    t = get(api, "/api/dashboard/trend?end=2025-02&months=14", q.TrendOut)
    assert t["months"][0]["month"] == "2024-01" and t["months"][-1]["month"] == "2025-02"
    assert_problem(api.get("/api/dashboard/trend?months=25"), 422, "months")
    assert_problem(api.get("/api/dashboard/trend?end=2025-13"), 422, "end")


def test_spending_by_category_with_top_n_and_other(api: Api, ledger: dict[str, Any]) -> None:
    s = get(api, "/api/dashboard/spending?month=2025-03&top=3", q.SpendingOut)
    assert s["total"] == brl(46_000)
    rows = [(c["category_id"], c["amount"]["amount"], c["share"]) for c in s["categories"]]
    assert rows == [
        (ledger["transport"], 30_000, 65.22),
        (ledger["food"], 6_000, 13.04),
        (ledger["fun"], 5_000, 10.87),
    ]
    assert s["other"] == {"amount": brl(5_000), "share": 10.87, "count": 1}
    assert s["categories"][0]["name"] == "Transporte" and s["categories"][0]["color"] == "blue"
    everything = get(api, "/api/dashboard/spending?month=2025-03&top=10", q.SpendingOut)
    assert everything["categories"][-1]["category_id"] is None  # uncategorized is shown
    assert everything["other_currencies"][0]["total"] == {"amount": 1_500, "currency": "USD"}


def test_accounts_overview_and_recent(api: Api, ledger: dict[str, Any]) -> None:
    a = get(api, "/api/dashboard/accounts?month=2025-03", q.AccountsOut)
    rows = {r["name"]: r for r in a["accounts"]}
    assert rows["Checking"]["month_income"] == brl(500_000)
    assert rows["Checking"]["month_expense"] == brl(16_000)
    assert rows["Checking"]["month_transfers_out"] == brl(20_000)
    assert rows["Card"]["month_expense"] == brl(30_000)
    assert rows["Card"]["month_transfers_in"] == brl(20_000)
    assert rows["Card"]["balance"] == brl(-10_000)
    recent = get(api, "/api/dashboard/recent?limit=3", q.RecentOut)["data"]
    assert [t["description"] for t in recent] == ["Cinema", "Lunch", "Pagamento fatura"]


def test_category_insights(api: Api, ledger: dict[str, Any]) -> None:
    i = get(api, f"/api/dashboard/categories/{ledger['food']}?end=2025-03&months=3", q.InsightsOut)
    assert i["category"]["name"] == "Alimentação"
    assert i["expense"] == brl(26_000) and i["income"] == brl(0)
    assert [m["expense"]["amount"] for m in i["monthly"]] == [20_000, 0, 6_000]
    assert [(x["account_name"], x["expense"]["amount"]) for x in i["accounts"]] == [
        ("Checking", 26_000)
    ]
    assert i["other_currencies"][0]["expense"] == {"amount": 1_500, "currency": "USD"}


def test_another_users_category_insights_are_404(
    api: Api, other: Api, ledger: dict[str, Any]
) -> None:
    assert_problem(other.get(f"/api/dashboard/categories/{ledger['food']}"), 404)
    s = get(other, "/api/dashboard/summary?month=2025-03", q.SummaryOut)
    assert s["total_balance"] == brl(0) and s["other_currencies"] == []


def test_cache_hit_miss_and_invalidation_on_every_kind_of_write(
    api: Api, ledger: dict[str, Any]
) -> None:
    path = "/api/dashboard/summary?month=2025-03"
    assert get(api, path, q.SummaryOut, cache="miss")["expense"] == brl(46_000)
    assert get(api, path, q.SummaryOut, cache="hit")["expense"] == brl(46_000)
    # Moving a transaction to another month invalidates: the next read is fresh.
    assert api.patch(f"/api/transactions/{ledger['loose']}", {"date": "2025-02-20"}).ok
    assert get(api, path, q.SummaryOut, cache="miss")["expense"] == brl(41_000)
    assert get(api, path, q.SummaryOut, cache="hit")["expense"] == brl(41_000)
    # So does an account change (balances are part of the summary).
    assert api.patch(f"/api/accounts/{ledger['card']}", {"opening_balance": 1_000}).ok
    assert get(api, path, q.SummaryOut, cache="miss")["total_balance"] == brl(1_035_000)
    # And the transactions list pages are cached and invalidated the same way.
    first = api.get("/api/transactions?limit=2")
    second = api.get("/api/transactions?limit=2")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert first.json() == second.json()
    api.txn(ledger["checking"], -1, "2030-01-01", "Newest")
    third = api.get("/api/transactions?limit=2")
    assert third.headers["X-Cache"] == "miss"
    assert third.json()["data"][0]["description"] == "Newest"


def test_reads_stay_correct_while_redis_is_down_and_the_cache_comes_back(
    api: Api, ledger: dict[str, Any], stack: Stack
) -> None:
    path = "/api/dashboard/summary?month=2025-03"
    get(api, path, q.SummaryOut)
    redis_server = stack.process("redis")
    redis_server.stop()
    try:
        down = get(api, path, q.SummaryOut)
        assert down["expense"] == brl(46_000)
        # Writes still work (the cache bump and the login throttle fail open) ...
        api.txn(ledger["checking"], -4_000, "2025-03-20", "While Redis is down")
        # ... and reads see them at once: nothing stale is served.
        assert get(api, path, q.SummaryOut, cache="bypass")["expense"] == brl(50_000)
        assert api.get("/api/transactions?limit=1").json()["data"][0]["description"] == ("Cinema")
    finally:
        redis_server.start()
        redis_server.wait_ready()
    time.sleep(1.2)  # the breaker (1 s in the test stack) lets Redis back in
    deadline = time.monotonic() + 10
    outcomes = []
    while time.monotonic() < deadline:
        r = api.get(path)
        assert r.status_code == 200 and r.json()["expense"] == brl(50_000)
        outcomes.append(r.headers["X-Cache"])
        if outcomes[-1] == "hit":
            break
        time.sleep(0.3)
    assert outcomes[-1] == "hit", outcomes


def test_recent_and_the_account_and_category_lists_are_cached_and_invalidated(
    api: Api, ledger: dict[str, Any]
) -> None:
    reads = ["/api/dashboard/recent?limit=5", "/api/accounts", "/api/categories"]

    def seen() -> list[tuple[str, Any]]:
        answers = [api.get(path) for path in reads]
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        return [(r.headers["X-Cache"], r.json()) for r in answers]

    first = seen()
    assert [c for c, _ in first] == ["miss"] * 3
    assert seen() == [("hit", body) for _, body in first]
    txn = api.txn(ledger["checking"], -1_234, "2031-01-01", "Newest of all")
    after = seen()
    assert [c for c, _ in after] == ["miss"] * 3
    assert after[0][1]["data"][0]["id"] == txn["id"]
    checking = next(a for a in after[1][1]["data"] if a["id"] == ledger["checking"])
    before = next(a for a in first[1][1]["data"] if a["id"] == ledger["checking"])
    assert checking["balance"]["amount"] == before["balance"]["amount"] - 1_234
    category = after[2][1]["data"][0]
    assert api.patch(f"/api/categories/{category['id']}", {"name": "Renamed ✓"}).ok
    renamed = seen()
    assert renamed[2][0] == "miss"
    assert any(c["name"] == "Renamed ✓" for c in renamed[2][1]["data"])
