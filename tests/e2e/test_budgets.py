"""Budgets through HTTP against the emulators: every budget case of the original's test suite
(../shared/spec/ORIGINAL.md §9), month boundaries, and concurrent allocations racing for the cap."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.e2e.conftest import Api, assert_problem
from valorize.entrypoints import budget_schemas as s


def brl(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "BRL"}


@pytest.fixture
def envelopes(api: Api) -> dict[str, str]:
    cats = api.categories()
    out = {}
    for name in ("Alimentação", "Lazer", "Transporte"):
        r = api.post("/api/budgets", {"category_id": cats[name]["id"]})
        assert r.status_code == 201, r.text
        s.BudgetOut.model_validate(r.json())
        out[name] = r.json()["id"]
    out["food_category"] = cats["Alimentação"]["id"]
    out["fun_category"] = cats["Lazer"]["id"]
    return out


def allocate(api: Api, budget: str, month: str, amount: int, currency: str = "BRL"):
    return api.post(
        "/api/budgets/allocate",
        {"budget_id": budget, "month": month, "amount": {"amount": amount, "currency": currency}},
    )


def income(api: Api, month: str, amount: int) -> dict[str, Any]:
    r = api.post("/api/budgets/income", {"month": month, "amount": brl(amount)})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_creating_twice_returns_the_existing_envelope(api: Api, envelopes: dict[str, str]) -> None:
    cat = api.categories()["Alimentação"]["id"]
    again = api.post("/api/budgets", {"category_id": cat, "name": "Other name"})
    assert again.status_code == 200 and again.json()["id"] == envelopes["Alimentação"]
    assert again.json()["name"] == "Alimentação" and again.json()["currency"] == "BRL"
    listed = api.get("/api/budgets").json()["data"]
    assert len(listed) == 3
    renamed = api.patch(f"/api/budgets/{envelopes['Lazer']}", {"name": "Fun"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Fun"
    assert api.delete(f"/api/budgets/{envelopes['Lazer']}").status_code == 204
    assert_problem(api.get(f"/api/budgets/{envelopes['Lazer']}"), 404)


def test_allocation_creates_then_replaces(api: Api, envelopes: dict[str, str]) -> None:
    food = envelopes["Alimentação"]
    assert allocate(api, food, "2025-05", 25_000).json()["allocations"]["2025-05"] == brl(25_000)
    second = allocate(api, food, "2025-05", 40_000).json()
    assert second["allocations"] == {"2025-05": brl(40_000)}  # replaced, not added


def test_allocation_in_another_currency_is_422(api: Api, envelopes: dict[str, str]) -> None:
    r = allocate(api, envelopes["Alimentação"], "2025-05", 1_000, "USD")
    assert_problem(r, 422, "amount.currency")


def test_income_caps_allocations_with_the_remaining_amount(
    api: Api, envelopes: dict[str, str]
) -> None:
    income(api, "2025-05", 50_000)
    assert allocate(api, envelopes["Lazer"], "2025-05", 30_000).status_code == 200
    refused = allocate(api, envelopes["Alimentação"], "2025-05", 25_000)
    body = assert_problem(refused, 422, "amount.amount")
    assert body["remaining"] == brl(20_000)
    assert allocate(api, envelopes["Alimentação"], "2025-05", 20_000).status_code == 200
    summary = api.get("/api/budgets/summary?month=2025-05").json()
    assert summary["assigned"] == brl(50_000) and summary["unassigned"] == brl(0)


def test_income_is_inherited_from_the_latest_earlier_month(
    api: Api, envelopes: dict[str, str]
) -> None:
    income(api, "2025-04", 50_000)
    summary = api.get("/api/budgets/summary?month=2025-05").json()
    s.MonthSummaryOut.model_validate(summary)
    assert summary["is_inherited"] and summary["income_month"] == "2025-04"
    assert_problem(allocate(api, envelopes["Alimentação"], "2025-05", 55_000), 422)
    assert allocate(api, envelopes["Alimentação"], "2025-05", 45_000).status_code == 200
    # Without any income, there is no cap.
    assert allocate(api, envelopes["Lazer"], "2025-03", 9_999_999).status_code == 200
    assert api.get("/api/budgets/summary?month=2025-03").json()["has_income"] is False


def test_move_money_is_uncapped_and_may_go_negative(api: Api, envelopes: dict[str, str]) -> None:
    food, fun = envelopes["Alimentação"], envelopes["Lazer"]
    allocate(api, food, "2025-05", 40_000)
    allocate(api, fun, "2025-05", 5_000)
    r = api.post(
        "/api/budgets/move",
        {"from_budget_id": food, "to_budget_id": fun, "month": "2025-05", "amount": brl(10_000)},
    )
    assert r.status_code == 200, r.text
    assert r.json()["from"]["allocations"]["2025-05"] == brl(30_000)
    assert r.json()["to"]["allocations"]["2025-05"] == brl(15_000)
    income(api, "2025-05", 1)  # a cap does not stop moves
    r = api.post(
        "/api/budgets/move",
        {"from_budget_id": fun, "to_budget_id": food, "month": "2025-05", "amount": brl(20_000)},
    )
    assert r.status_code == 200 and r.json()["from"]["allocations"]["2025-05"] == brl(-5_000)
    usd = api.post(
        "/api/budgets/move",
        {
            "from_budget_id": food,
            "to_budget_id": fun,
            "month": "2025-05",
            "amount": {"amount": 1, "currency": "USD"},
        },
    )
    assert_problem(usd, 422, "amount.currency")
    same = api.post(
        "/api/budgets/move",
        {"from_budget_id": food, "to_budget_id": food, "month": "2025-05", "amount": brl(1)},
    )
    assert_problem(same, 422, "to_budget_id")


def test_overview_rollover_spent_including_a_split_and_remaining(
    api: Api, envelopes: dict[str, str]
) -> None:
    """The original's example: rollover 70,000, spent 35,000 (incl. a split), left 85,000."""
    food, food_cat, fun_cat = (
        envelopes["Alimentação"],
        envelopes["food_category"],
        envelopes["fun_category"],
    )
    acc = api.account()["id"]
    allocate(api, food, "2025-04", 100_000)
    api.txn(acc, -30_000, "2025-04-15", "Mercado", category_id=food_cat)
    allocate(api, food, "2025-05", 50_000)
    api.txn(acc, -20_000, "2025-05-03", "Mercado", category_id=food_cat)
    api.txn(
        acc,
        -25_000,
        "2025-05-10",
        "Feira",
        splits=[
            {"category_id": food_cat, "amount": -15_000},
            {"category_id": fun_cat, "amount": -10_000},
        ],
    )
    # Later months and other currencies do not leak into May.
    api.txn(acc, -7_000, "2025-06-01", "Mercado", category_id=food_cat)
    o = api.get("/api/budgets/overview?month=2025-05").json()
    s.OverviewOut.model_validate(o)
    row = next(e for e in o["envelopes"] if e["budget_id"] == food)
    assert (row["budgeted"], row["spent"], row["rollover"], row["available"]) == (
        brl(50_000),
        brl(35_000),
        brl(70_000),
        brl(85_000),
    )
    fun = next(e for e in o["envelopes"] if e["category_id"] == fun_cat)
    assert fun["spent"] == brl(10_000) and fun["available"] == brl(-10_000) and fun["overspent"]


def test_january_rolls_over_from_december(api: Api, envelopes: dict[str, str]) -> None:
    food, food_cat = envelopes["Alimentação"], envelopes["food_category"]
    acc = api.account()["id"]
    allocate(api, food, "2024-12", 10_000)
    api.txn(acc, -4_000, "2024-12-31", "Ceia", category_id=food_cat)
    api.txn(acc, -1_000, "2025-01-01", "Café", category_id=food_cat)
    o = api.get("/api/budgets/overview?month=2025-01").json()
    row = next(e for e in o["envelopes"] if e["budget_id"] == food)
    assert (row["rollover"], row["spent"], row["available"]) == (brl(6_000), brl(1_000), brl(5_000))


def test_concurrent_allocations_over_the_cap_exactly_one_fails(
    api: Api, envelopes: dict[str, str]
) -> None:
    income(api, "2025-07", 50_000)
    targets = [envelopes["Alimentação"], envelopes["Lazer"]]

    def go(budget: str) -> int:
        return allocate(api, budget, "2025-07", 30_000).status_code

    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(pool.map(go, targets))
    assert statuses == [200, 422]
    summary = api.get("/api/budgets/summary?month=2025-07").json()
    assert summary["assigned"] == brl(30_000)


def test_another_users_envelopes_are_404(api: Api, other: Api, envelopes: dict[str, str]) -> None:
    food = envelopes["Alimentação"]
    assert_problem(other.get(f"/api/budgets/{food}"), 404)
    assert_problem(allocate(other, food, "2025-05", 1), 404)
    assert_problem(
        other.post("/api/budgets", {"category_id": envelopes["food_category"]}), 422, "category_id"
    )
    assert other.get("/api/budgets").json()["data"] == []


def test_move_replay_with_idempotency_key_moves_once(api: Api, envelopes: dict[str, str]) -> None:
    food, fun = envelopes["Alimentação"], envelopes["Lazer"]
    body = {"from_budget_id": food, "to_budget_id": fun, "month": "2025-08", "amount": brl(100)}
    for _ in range(3):
        r = api.post("/api/budgets/move", body, headers={"Idempotency-Key": "mv-1"})
        assert r.status_code == 200, r.text
    assert api.get(f"/api/budgets/{fun}").json()["allocations"]["2025-08"] == brl(100)


def test_budget_reads_are_cached_and_every_budget_write_invalidates_them(
    api: Api, envelopes: dict[str, str]
) -> None:
    reads = [
        "/api/budgets",
        "/api/budgets/overview?month=2025-06",
        "/api/budgets/summary?month=2025-06",
    ]

    def seen() -> list[tuple[str, Any]]:
        answers = [api.get(path) for path in reads]
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        return [(r.headers["X-Cache"], r.json()) for r in answers]

    first = seen()
    assert [c for c, _ in first] == ["miss"] * 3
    assert seen() == [("hit", body) for _, body in first]
    writes = [
        lambda: income(api, "2025-06", 100_000),
        lambda: allocate(api, envelopes["Lazer"], "2025-06", 7_000),
        lambda: api.patch(f"/api/budgets/{envelopes['Lazer']}", {"name": "Fun"}),
        lambda: api.post(
            "/api/transactions",
            {
                "account_id": api.account()["id"],
                "amount": -500,
                "date": "2025-06-02",
                "description": "Cinema",
                "category_id": envelopes["fun_category"],
            },
        ),
    ]
    for write in writes:
        write()
        after = seen()
        assert [c for c, _ in after] == ["miss"] * 3, write
        assert seen() == [("hit", body) for _, body in after]
    overview = after[1][1]
    fun = next(e for e in overview["envelopes"] if e["budget_id"] == envelopes["Lazer"])
    assert fun["name"] == "Fun" and fun["budgeted"] == brl(7_000) and fun["spent"] == brl(500)
