"""The IDOR sweep: every public operation of the OpenAPI document that takes an id in its
path, called by another user with the owner's real ids, answers a problem+json 404 (a body
the route refuses may be a 422 first), never a 2xx or a 5xx, and nothing of the owner's
changes: their whole visible state is the same before and after the sweep.

Generated from the committed document (openapi/openapi.json), so a new route with an id is
swept as soon as it is documented; a new kind of id fails the sweep until the owner below
has one of it."""

from __future__ import annotations

import io
import json
from typing import Any

from devstack.services import REPO_ROOT
from load.samples import csv_sample
from tests.e2e.conftest import Api, eventually
from tests.e2e.test_conformance import is_public

METHODS = ("get", "post", "put", "patch", "delete")
DOCUMENT = json.loads((REPO_ROOT / "openapi" / "openapi.json").read_text())
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method in METHODS and "{" in path and is_public(path)
)
# A body the route would take from its owner, so a refusal is about whose ids they are.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/accounts/{account_id}"): {"name": "Mine now"},
    ("PATCH", "/api/budgets/{budget_id}"): {"name": "Mine now"},
    ("PATCH", "/api/categories/{category_id}"): {"name": "Mine now"},
    ("PATCH", "/api/recurrences/{recurrence_id}"): {"description": "Mine now"},
    ("PATCH", "/api/rules/{rule_id}"): {"name": "Mine now"},
    ("PATCH", "/api/transactions/{transaction_id}"): {"description": "Mine now"},
    ("PATCH", "/api/imports/{import_id}/rows/{row_id}"): {"include": False},
}


def owned(api: Api) -> dict[str, str]:
    """One of everything an id in a path can name, the owner's."""
    account = api.account(opening_balance=1_000)
    category = api.post("/api/categories", {"name": "Private", "color": "red"}).json()
    txn = api.txn(account["id"], -100, category_id=category["id"])
    budget = api.post("/api/budgets", {"category_id": category["id"]}).json()
    token = api.post("/api/auth/tokens", {"name": "phone"}).json()
    rule = api.post(
        "/api/rules",
        {
            "name": "Coffee",
            "conditions": [{"field": "description", "op": "contains", "value": "coffee"}],
            "actions": [{"action": "add_note", "value": "caffeine"}],
        },
    ).json()
    recurrence = api.post(
        "/api/recurrences",
        {
            "account_id": account["id"],
            "amount": -5_000,
            "description": "Gym",
            "schedule": {"frequency": "monthly", "day": 5},
            "start": "2025-01-05",
        },
    ).json()
    job = api.post("/api/rules/apply", {}).json()
    eventually(
        lambda: api.get(f"/api/rules/apply/{job['id']}").json()["status"] == "done", "the job"
    )
    upload = api.request(
        "POST",
        "/api/imports",
        files={"file": ("s.csv", io.BytesIO(csv_sample(5, layout="generic")), "text/csv")},
        data={"account_id": account["id"], "preset": "generic"},
    )
    assert upload.status_code == 202, upload.text
    imported = upload.json()["id"]
    eventually(
        lambda: api.get(f"/api/imports/{imported}").json()["status"] == "ready", "the import"
    )
    row = api.get(f"/api/imports/{imported}/rows").json()["data"][0]
    # The import's "ready" reaches the inbox through the notify task.
    notification = eventually(
        lambda: api.get("/api/notifications").json()["data"], "a notification"
    )[0]
    return {
        "account_id": account["id"],
        "category_id": category["id"],
        "transaction_id": txn["id"],
        "budget_id": budget["id"],
        "token_id": token["id"],
        "rule_id": rule["id"],
        "recurrence_id": recurrence["id"],
        "job_id": job["id"],
        "import_id": imported,
        "row_id": row["id"],
        "notification_id": notification["id"],
    }


def state(api: Api, ids: dict[str, str]) -> dict[str, Any]:
    """Everything the owner can see, as they see it."""
    paths = [
        "/api/accounts",
        "/api/categories?limit=200",
        "/api/transactions",
        "/api/budgets",
        "/api/rules",
        "/api/recurrences",
        "/api/imports",
        f"/api/imports/{ids['import_id']}/rows",
        "/api/notifications",
        f"/api/rules/apply/{ids['job_id']}",
    ]
    seen = {path: api.get(path).json() for path in paths}
    # Tokens, less when each was last used (the owner's own reads move it).
    seen["tokens"] = [
        {k: v for k, v in t.items() if k != "last_used_at"}
        for t in api.get("/api/auth/tokens").json()["data"]
    ]
    return seen


def test_another_user_reaches_nothing_of_the_owner_by_any_id(api: Api, other: Api) -> None:
    ids = owned(api)
    names = {name for _, path in OPERATIONS for name in _params(path)}
    assert names <= set(ids), f"no owned id for {names - set(ids)}: add one to owned()"
    before = eventually(lambda: (s := state(api, ids)) == state(api, ids) and s, "a still state")

    answers: dict[str, int] = {}
    for method, path in OPERATIONS:
        # An account with transactions needs the confirmation from its owner too.
        confirm = (method, path) == ("DELETE", "/api/accounts/{account_id}")
        url = path.format(**ids) + ("?confirm=true" if confirm else "")
        body = BODIES.get((method, path), {}) if method in ("POST", "PATCH", "PUT") else None
        r = other.request(method, url, json=body)
        answers[f"{method} {path}"] = r.status_code
        assert r.headers["Content-Type"].startswith("application/problem+json"), (path, r.text)
        allowed = (404,) if method in ("GET", "DELETE") else (404, 422)
        assert r.status_code in allowed, (method, path, r.status_code, r.text)
    assert len(answers) == len(OPERATIONS) >= 25, answers
    # Most refusals are the 404 itself, not a body check that happened to come first.
    assert sum(status == 404 for status in answers.values()) >= len(answers) - 2, answers

    assert state(api, ids) == before


def _params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
