"""One user can never see or touch another's data: 404, never 403, and nothing written."""

from __future__ import annotations

from tests.e2e.conftest import Api, assert_problem


def test_another_users_resources_are_404_for_every_verb(api: Api, other: Api) -> None:
    acc = api.account(opening_balance=1_000)
    cat = api.post("/api/categories", {"name": "Private", "color": "red"}).json()
    t = api.txn(acc["id"], -100, category_id=cat["id"])
    for path in (
        f"/api/accounts/{acc['id']}",
        f"/api/categories/{cat['id']}",
        f"/api/transactions/{t['id']}",
    ):
        assert_problem(other.get(path), 404)
        assert_problem(
            other.patch(
                path, {"name": "x"} if "transactions" not in path else {"description": "x"}
            ),
            404,
        )
        assert_problem(other.delete(path + "?confirm=true" if "accounts" in path else path), 404)
    # Lists are scoped too.
    assert other.get("/api/accounts").json()["data"] == []
    assert other.get("/api/transactions").json()["data"] == []
    assert cat["id"] not in {c["id"] for c in other.get("/api/categories").json()["data"]}
    assert other.get(f"/api/transactions?account_id={acc['id']}").json()["data"] == []
    # And nothing changed for the owner.
    assert api.balance(acc["id"]) == 900
    assert api.get(f"/api/categories/{cat['id']}").json()["name"] == "Private"
    assert api.get(f"/api/transactions/{t['id']}").json()["description"] == "Coffee"


def test_cannot_write_into_another_users_account_or_category(api: Api, other: Api) -> None:
    acc = api.account()
    cat = api.categories()["Lazer"]
    mine = other.account()
    r = other.post(
        "/api/transactions",
        {"account_id": acc["id"], "amount": -1, "date": "2025-01-01", "description": "steal"},
    )
    assert_problem(r, 422, "account_id")
    r = other.post(
        "/api/transactions",
        {
            "account_id": mine["id"],
            "amount": -1,
            "date": "2025-01-01",
            "description": "x",
            "category_id": cat["id"],
        },
    )
    assert_problem(r, 422, "category_id")
    r = other.post(
        "/api/transactions/transfers",
        {
            "from_account_id": mine["id"],
            "to_account_id": acc["id"],
            "amount": 1,
            "date": "2025-01-01",
            "description": "x",
        },
    )
    assert_problem(r, 422, "to_account_id")
    r = other.post("/api/categories", {"name": "Sub", "color": "red", "parent_id": cat["id"]})
    assert_problem(r, 422, "parent_id")
    t = other.txn(mine["id"], -5)
    assert_problem(
        other.patch(f"/api/transactions/{t['id']}", {"category_id": cat["id"]}), 422, "category_id"
    )
    assert api.balance(acc["id"]) == 0
    assert api.get("/api/transactions").json()["data"] == []
