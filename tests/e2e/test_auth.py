from __future__ import annotations

import uuid

import requests

from tests.e2e.conftest import Api, assert_problem, register


def test_register_returns_user_and_working_token(base_url: str) -> None:
    email = f"Mixed.Case-{uuid.uuid4().hex[:6]}@Example.com"
    r = requests.post(
        base_url + "/api/auth/register",
        json={
            "email": email,
            "password": "long enough pw",
            "name": "Ana",
            "preferred_currency": "USD",
        },
        timeout=30,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"]["email"] == email.lower()
    assert body["user"]["locale"] == "en"
    me = requests.get(
        base_url + "/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"}, timeout=30
    )
    assert me.status_code == 200 and me.json()["id"] == body["user"]["id"]
    assert "password" not in me.text


def test_duplicate_email_is_a_conflict(api: Api, base_url: str) -> None:
    r = requests.post(
        base_url + "/api/auth/register",
        json={
            "email": api.email.upper(),
            "password": "another password",
            "name": "X",  # type: ignore[attr-defined]
            "preferred_currency": "BRL",
        },
        timeout=30,
    )
    assert_problem(r, 409)


def test_login_issues_a_new_token(api: Api, anon: Api) -> None:
    r = anon.post("/api/auth/login", {"email": api.email, "password": "correct horse battery"})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token != api.token
    assert anon.get("/api/accounts", token=token).status_code == 200


def test_wrong_password_is_401_and_repeated_failures_are_throttled(api: Api, anon: Api) -> None:
    email = api.email  # type: ignore[attr-defined]
    for _ in range(5):
        assert_problem(anon.post("/api/auth/login", {"email": email, "password": "nope"}), 401)
    blocked = anon.post("/api/auth/login", {"email": email, "password": "correct horse battery"})
    assert_problem(blocked, 429)
    assert int(blocked.headers["Retry-After"]) > 0
    # A client cannot escape the throttle by writing its own X-Forwarded-For.
    spoofed = anon.post(
        "/api/auth/login",
        {"email": email, "password": "correct horse battery"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert_problem(spoofed, 429)


def test_unknown_email_is_401(anon: Api) -> None:
    r = anon.post("/api/auth/login", {"email": "nobody@example.com", "password": "whatever1"})
    assert_problem(r, 401)


def test_tokens_list_create_revoke(api: Api) -> None:
    created = api.post("/api/auth/tokens", {"name": "script", "expires_in_days": 7})
    assert created.status_code == 201, created.text
    new = created.json()
    assert new["token"].startswith("vz_") and new["expires_at"]
    listed = api.get("/api/auth/tokens").json()["data"]
    assert {t["id"] for t in listed} >= {new["id"]}
    assert all("token" not in t and "secret_hash" not in t for t in listed)
    assert api.get("/api/accounts", token=new["token"]).status_code == 200
    assert api.delete(f"/api/auth/tokens/{new['id']}").status_code == 204
    assert_problem(api.get("/api/accounts", token=new["token"]), 401)
    assert_problem(api.delete(f"/api/auth/tokens/{new['id']}"), 404)


def test_missing_malformed_and_forged_tokens_are_401(api: Api, anon: Api) -> None:
    assert_problem(anon.get("/api/accounts"), 401)
    assert_problem(anon.get("/api/accounts", token="garbage"), 401)
    token_id = api.token.split("_")[1]  # type: ignore[union-attr]
    assert_problem(anon.get("/api/accounts", token=f"vz_{token_id}_forgedsecret"), 401)
    r = anon.request("GET", "/api/accounts", headers={"Authorization": "Basic abc"})
    assert_problem(r, 401)


def test_another_users_token_cannot_be_revoked(api: Api, other: Api) -> None:
    mine = api.get("/api/auth/tokens").json()["data"][0]["id"]
    assert_problem(other.delete(f"/api/auth/tokens/{mine}"), 404)
    assert api.get("/api/accounts").status_code == 200


def test_pt_br_users_get_portuguese_defaults(base_url: str) -> None:
    pt = register(base_url, currency="BRL")
    en = register(base_url, currency="EUR")
    assert "Alimentação" in pt.categories() and len(pt.categories()) == 10
    assert "Food & Groceries" in en.categories() and len(en.categories()) == 10
    forced = register(base_url, currency="BRL", locale="en")
    assert "Food & Groceries" in forced.categories()
