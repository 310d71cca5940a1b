"""Bad input gets the right 4xx problem naming the field, never a 5xx, and writes nothing."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Api, assert_problem


@pytest.fixture
def acc(api: Api) -> dict:
    return api.account()


def _post_raw(api: Api, path: str, data: bytes, ctype: str = "application/json"):
    return api.request("POST", path, data=data, headers={"Content-Type": ctype})


def test_malformed_json_is_400(api: Api, acc: dict) -> None:
    for raw in (b"{", b'{"amount": }', b"\xff\xfe", b""):
        assert_problem(_post_raw(api, "/api/transactions", raw), 400)


@pytest.mark.parametrize("amount", [12.5, 1.0, "1200", "12,00", None, True, 2**63, [1], {"v": 1}])
def test_amount_must_be_an_integer_of_minor_units(api: Api, acc: dict, amount: object) -> None:
    r = api.post(
        "/api/transactions",
        {"account_id": acc["id"], "amount": amount, "date": "2025-01-01", "description": "x"},
    )
    assert_problem(r, 422, "amount")
    assert api.balance(acc["id"]) == 0


@pytest.mark.parametrize(
    "date",
    ["2025-02-30", "2025-13-01", "01/02/2025", "2025-1-1", 20250101, "2025-02-01T10:00:00Z", ""],
)
def test_impossible_or_malformed_dates(api: Api, acc: dict, date: object) -> None:
    r = api.post(
        "/api/transactions",
        {"account_id": acc["id"], "amount": 1, "date": date, "description": "x"},
    )
    assert_problem(r, 422, "date")


@pytest.mark.parametrize("currency", ["XYZ", "brl", "R$", "", 986, "BRLL"])
def test_unknown_currencies(api: Api, currency: object) -> None:
    r = api.post("/api/accounts", {"name": "A", "type": "checking", "currency": currency})
    assert_problem(r, 422, "currency")


def test_wrongly_typed_and_unknown_fields(api: Api, acc: dict) -> None:
    r = api.post(
        "/api/transactions",
        {
            "account_id": 123,
            "amount": 1,
            "date": "2025-01-01",
            "description": ["x"],
            "notes": {"a": 1},
        },
    )
    body = assert_problem(r, 422)
    assert {"account_id", "description", "notes"} <= {e["field"] for e in body["errors"]}
    r = api.post(
        "/api/accounts", {"name": "A", "type": "checking", "currency": "BRL", "balance": 100}
    )
    assert_problem(r, 422, "balance")
    r = api.post(
        "/api/transactions",
        {
            "account_id": acc["id"],
            "amount": 1,
            "date": "2025-01-01",
            "description": "x",
            "splits": [{"category_id": "c", "amount": 1.5}],
        },
    )
    assert_problem(r, 422, "splits.0.amount")
    assert_problem(api.post("/api/accounts", [1, 2]), 422, "body")
    assert_problem(api.post("/api/accounts", {}), 422, "name")


def test_oversized_body_is_413(api: Api, acc: dict) -> None:
    big = (
        b'{"account_id": "' + acc["id"].encode() + b'", "description": "' + b"x" * 2_000_000 + b'"}'
    )
    assert_problem(_post_raw(api, "/api/transactions", big), 413)


def test_wrong_content_type_is_415(api: Api, acc: dict) -> None:
    r = _post_raw(api, "/api/accounts", b"name=A", "application/x-www-form-urlencoded")
    assert_problem(r, 415)


def test_missing_token_beats_validation(anon: Api) -> None:
    assert_problem(anon.post("/api/transactions", {"amount": 1.5}), 401)


def test_unknown_routes_and_methods(api: Api) -> None:
    assert_problem(api.get("/api/accounts/x/y/z"), 404)
    assert_problem(api.request("PUT", "/api/accounts"), 405)
    assert_problem(api.get("/api/nothing-here"), 404)


def test_bad_query_values(api: Api) -> None:
    assert_problem(api.get("/api/transactions?limit=abc"), 422, "limit")
    assert_problem(api.get("/api/transactions?from=2025-02-30"), 422, "from")
    assert_problem(api.get("/api/transactions?min_amount=1.5"), 422, "min_amount")
    assert_problem(api.get("/api/transactions?bogus=1"), 422, "bogus")
    assert_problem(api.get("/api/transactions?limit=1&limit=2"), 422, "limit")


def test_null_for_required_fields_in_patch(api: Api, acc: dict) -> None:
    t = api.txn(acc["id"], -100)
    assert_problem(api.patch(f"/api/transactions/{t['id']}", {"amount": None}), 422, "amount")
    assert_problem(api.patch(f"/api/accounts/{acc['id']}", {"name": None}), 422, "name")
    assert api.balance(acc["id"]) == -100


def test_healthz_and_cors_preflight(api: Api, anon: Api) -> None:
    for name in ("auth", "accounts", "categories", "transactions"):
        assert anon.get(f"/api/{name}/healthz").status_code == 200
    r = anon.request(
        "OPTIONS",
        "/api/transactions",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    r = anon.request(
        "OPTIONS",
        "/api/transactions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in r.headers
