"""A revoked token stops working everywhere at once: every function keeps verified tokens in
memory (service/auth.py TokenCache), and the revocation, announced over Redis, reaches each
of them before its next request; the realtime instances close the token's open sockets."""

from __future__ import annotations

import time

import requests
import socketio

from devstack.stack import Stack
from functions import registry
from tests.e2e.conftest import Api
from tests.e2e.test_realtime import Listener

# One authenticated read per public function, each served by that function's own server.
READS = {
    "auth": "/api/auth/me",
    "accounts": "/api/accounts",
    "categories": "/api/categories",
    "transactions": "/api/transactions",
    "dashboard": "/api/dashboard/summary",
    "budgets": "/api/budgets",
    "rules": "/api/rules",
    "recurrences": "/api/recurrences",
    "notifications": "/api/notifications/unread-count",
    "ingest": "/api/imports",
}
# The promise: refused by every function within this long of the revocation's answer.
WITHIN = 1.0


def status(stack: Stack, function: str, token: str) -> int:
    url = stack.urls.functions[function] + READS[function]
    return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def test_every_public_function_is_covered() -> None:
    assert set(READS) == {f for f in registry.public_routes().values()}


def test_a_revoked_token_is_refused_by_every_function_within_a_second(
    stack: Stack, api: Api
) -> None:
    issued = api.post("/api/auth/tokens", {"name": "stolen laptop"}).json()
    token = issued["token"]
    # Twice each: the second answer comes from the function's memory.
    for function in READS:
        assert [status(stack, function, token) for _ in range(2)] == [200, 200], function
    assert api.delete(f"/api/auth/tokens/{issued['id']}").status_code == 204
    revoked_at = time.monotonic()
    refused_after: dict[str, float] = {}
    pending = set(READS)
    while pending and time.monotonic() - revoked_at < 10:
        for function in sorted(pending):
            if status(stack, function, token) == 401:
                refused_after[function] = time.monotonic() - revoked_at
                pending.discard(function)
    assert not pending, f"still accepted after 10 s by {sorted(pending)}"
    assert max(refused_after.values()) < WITHIN, refused_after
    # The user's other token is untouched.
    assert all(status(stack, f, str(api.token)) == 200 for f in READS)


def test_a_revoked_tokens_open_sockets_are_closed(stack: Stack, api: Api) -> None:
    issued = api.post("/api/auth/tokens", {"name": "tablet"}).json()
    listeners = [Listener(url, issued["token"]) for url in stack.urls.realtime_instances]
    keeper = Listener(stack.urls.realtime_instances[0], str(api.token))
    for listener in [*listeners, keeper]:
        listener.connect()
    try:
        assert api.delete(f"/api/auth/tokens/{issued['id']}").status_code == 204
        deadline = time.monotonic() + WITHIN + 1.0
        while any(x.client.connected for x in listeners) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(x.client.connected for x in listeners)
        assert keeper.client.connected
        again = Listener(stack.urls.realtime_instances[1], issued["token"])
        try:
            again.connect()
            raise AssertionError("a revoked token connected")
        except socketio.exceptions.ConnectionError:
            assert again.refused == {"message": "invalid or revoked token"}
    finally:
        for listener in [*listeners, keeper]:
            listener.close()
