"""End-to-end helpers: an HTTP client through the gateway and fresh users per test."""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import requests

from devstack.stack import Stack

pytestmark = pytest.mark.e2e
_counter = itertools.count()


@dataclass
class Secrets:
    """Every password and token the end-to-end tests sent or were given, for the log audit
    (tests/e2e/test_logs.py): none may appear in any log line of the stack."""

    passwords: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)

    def saw_body(self, body: Any) -> None:
        if isinstance(body, dict):
            for key in ("password", "new_password", "current_password"):
                if isinstance(body.get(key), str):
                    self.passwords.add(body[key])
            if isinstance(body.get("token"), str):
                self.tokens.add(body["token"])


SECRETS = Secrets()


@dataclass
class Api:
    base: str
    token: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> requests.Response:
        h = dict(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
            SECRETS.tokens.add(tok)
        SECRETS.saw_body(json)
        answer = self.session.request(
            method, self.base + path, json=json, headers=h, timeout=30, **kw
        )
        if answer.headers.get("Content-Type", "").startswith("application/json"):
            with contextlib.suppress(ValueError):
                SECRETS.saw_body(answer.json())
        return answer

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    # shortcuts that assert success
    def account(self, **over: Any) -> dict[str, Any]:
        body = {"name": "Checking", "type": "checking", "currency": "BRL", **over}
        r = self.post("/api/accounts", body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def deletion_done(self, account_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait for the account's deletion (its tasks) to finish; its final progress."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(f"/api/accounts/{account_id}/deletion")
            assert r.status_code == 200, r.text
            if r.json()["state"] == "done":
                return dict(r.json())
            assert time.monotonic() < deadline, f"deletion not done: {r.text}"
            time.sleep(0.1)

    def categories(self) -> dict[str, dict[str, Any]]:
        r = self.get("/api/categories?limit=200")
        assert r.status_code == 200, r.text
        return {c["name"]: c for c in r.json()["data"]}

    def txn(
        self,
        account_id: str,
        amount: int,
        date: str = "2025-03-10",
        description: str = "Coffee",
        **over: Any,
    ) -> dict[str, Any]:
        body = {
            "account_id": account_id,
            "amount": amount,
            "date": date,
            "description": description,
            **over,
        }
        r = self.post("/api/transactions", body)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def balance(self, account_id: str) -> int:
        r = self.get(f"/api/accounts/{account_id}")
        assert r.status_code == 200, r.text
        return int(r.json()["balance"]["amount"])


@pytest.fixture(scope="session")
def base_url(stack: Stack) -> str:
    assert stack.urls.base_url
    return stack.urls.base_url


def register(base_url: str, currency: str = "BRL", locale: str | None = None) -> Api:
    email = f"user{next(_counter)}-{uuid.uuid4().hex[:8]}@example.com"
    body: dict[str, Any] = {
        "email": email,
        "password": "correct horse battery",
        "name": "Test User",
        "preferred_currency": currency,
    }
    if locale:
        body["locale"] = locale
    r = requests.post(base_url + "/api/auth/register", json=body, timeout=30)
    assert r.status_code == 201, r.text
    SECRETS.saw_body(body)
    SECRETS.saw_body(r.json())
    api = Api(base_url, r.json()["token"])
    api.email = email  # type: ignore[attr-defined]
    return api


@pytest.fixture
def api(base_url: str) -> Api:
    return register(base_url)


@pytest.fixture
def other(base_url: str) -> Api:
    return register(base_url)


@pytest.fixture
def anon(base_url: str) -> Api:
    return Api(base_url)


def assert_problem(r: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    body = dict(r.json())
    assert body["status"] == status and body["title"]
    assert "Traceback" not in r.text
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


T = TypeVar("T")
DEADLINE = 90.0


def eventually(probe: Callable[[], T | None], what: str, timeout: float = DEADLINE) -> T:
    """Poll until `probe` returns something truthy (then return it) or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)
