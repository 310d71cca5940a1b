"""Hostile names, ids and cursors through the real servers (functions-framework behind the
gateway): nothing a client sends becomes a Firestore path, so nothing it sends is a 5xx.

First the cases issue 10 (item 2) found, then a property test per route family that puts any
Unicode (`/`, `.`, `..`, `__x__`, `%2F`, NUL, astral characters, very long strings, valid but
unknown ids) where a name, a path id, a body or query reference or a cursor goes, and checks
that no answer is a 5xx and that no document lands outside the documents the API issues.

`VALORIZE_HOSTILE_EXAMPLES` sets the property test's examples per route family (default 25,
about 15 s in the suite); e.g. `VALORIZE_HOSTILE_EXAMPLES=500` for a long run."""

from __future__ import annotations

import base64
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.stack import Stack
from tests.e2e.conftest import Api, assert_problem, register

ROOT = Path(__file__).resolve().parents[2]
STATEMENT = ROOT / "tests" / "fixtures" / "statements" / "bank_v2.ofx"
EXAMPLES = int(os.environ.get("VALORIZE_HOSTILE_EXAMPLES", "25"))
HEX = "[0-9a-f]{32}"
UNKNOWN = "0" * 32  # well formed, issued to nobody

# What issue 10 sent, and their near relatives.
HOSTILE = [
    "__main__",
    "__x__",
    "__name__",
    ".",
    "..",
    "/",
    "a/b",
    "%2F",
    "%2E%2E",
    "../..",
    "\x00",
    "ação",
    "x" * 1500,
    "0" * 31 + "/",
    "F" * 32,  # hex, but not as the API writes it
]


def cursor_of(value: str) -> str:
    raw = value.encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def segment(value: str) -> str:
    """`value` as one path segment, sent as is: dots are escaped, or the client would remove
    `.` and `..` segments before the request left."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="").replace(".", "%2E")


def no_5xx(r: requests.Response) -> None:
    assert r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text[:500])
    assert "Traceback" not in r.text


# --- a user with one of everything ------------------------------------------------------------


@dataclass
class World:
    api: Api
    uid: str
    account: str
    other_account: str
    category: str
    transaction: str
    budget: str
    rule: str
    recurrence: str
    job: str
    imported: str
    row: str
    notification: str


def _ok(r: requests.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def world(base_url: str, stack: Stack) -> World:
    api = register(base_url)
    uid = _ok(api.get("/api/auth/me"))["id"]
    account, other_account = api.account()["id"], api.account(name="Savings")["id"]
    category = _ok(api.post("/api/categories", {"name": "Base", "color": "red"}), 201)["id"]
    transaction = api.txn(account, -1_000, category_id=category)["id"]
    budget = _ok(api.post("/api/budgets", {"category_id": category}), 201)["id"]
    rule = _ok(
        api.post(
            "/api/rules",
            {
                "name": "r",
                "conditions": [{"field": "description", "op": "contains", "value": "zzz"}],
                "actions": [{"action": "add_note", "value": "n"}],
            },
        ),
        201,
    )["id"]
    recurrence = _ok(
        api.post(
            "/api/recurrences",
            {
                "account_id": account,
                "amount": -1,
                "description": "Rent",
                "schedule": {"frequency": "monthly", "day": 1},
                "start": "2099-01-01",
            },
        ),
        201,
    )["id"]
    job = _ok(api.post("/api/rules/apply", {}), 202)["id"]
    upload = api.request(
        "POST",
        "/api/imports",
        files={"file": ("s.ofx", STATEMENT.read_bytes(), "application/octet-stream")},
        data={"account_id": account},
    )
    imported = _ok(upload, 202)["id"]
    deadline = time.monotonic() + 90
    while _ok(api.get(f"/api/imports/{imported}"))["status"] not in ("ready", "failed"):
        assert time.monotonic() < deadline, "the import never got ready"
        time.sleep(0.3)
    row = _ok(api.get(f"/api/imports/{imported}/rows"))["data"][0]["id"]
    notification = f"import-{imported}-ready"
    return World(
        api,
        uid,
        account,
        other_account,
        category,
        transaction,
        budget,
        rule,
        recurrence,
        job,
        imported,
        row,
        notification,
    )


@pytest.fixture(scope="module")
def db(emulator_env: dict[str, str]) -> Any:
    from valorize import bootstrap

    return bootstrap.build().firestore


# --- where documents may be -------------------------------------------------------------------

TRANSACTION = rf"{HEX}|rec-{HEX}-[0-9]{{8}}"
IMPORT = rf"{HEX}|k[0-9a-f]{{31}}"
# users/{uid}/<collection>/<id>: the form of the ids each collection holds.
USER_COLLECTIONS = {
    "accounts": HEX,
    "categories": HEX,
    "category_names": "[0-9a-f]{64}",
    "transactions": TRANSACTION,
    "idempotency": "[0-9a-f]{64}",
    "months": r"[0-9]{4}-[0-9]{2}",
    "totals": "all",
    "budgets": HEX,
    "settings": "budget_income|notifications|rules",
    "rules": HEX,
    "rule_jobs": HEX,
    "recurrences": HEX,
    "automation_runs": r"(daily|month_start)-[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "imports": IMPORT,
    "notifications": r"[a-z][A-Za-z0-9_-]{0,199}",
}
NESTED = {("imports", "rows"): r"[0-9]{3,}-[0-9]{7,}", ("rule_jobs", "pages"): "[0-9]+"}
ROOTS = {"users": HEX, "credentials": "[0-9a-f]{64}", "tokens": HEX}


def stray_documents(db: Any, uid: str) -> list[str]:
    """Every document (or path holding documents) under users/{uid} that is not where the API
    puts documents, with ids of the form it issues."""
    strays: list[str] = []

    def walk(doc: Any, parents: tuple[str, ...]) -> None:
        for col in doc.collections():
            key = (*parents, col.id)
            form = USER_COLLECTIONS.get(col.id) if not parents else NESTED.get(key)
            for child in col.list_documents():
                if form is None or not re.fullmatch(form, child.id):
                    strays.append(child.path)
                    continue
                if len(key) < 2:
                    walk(child, key)

    walk(db.collection("users").document(uid), ())
    return strays


def stray_roots(db: Any, ids: dict[str, list[str]]) -> list[str]:
    """Top-level collections other than users, credentials and tokens, and the given ids in
    those that are not of the form the API issues."""
    strays = [c.id for c in db.collections() if c.id not in ROOTS]
    for name, wanted in ids.items():
        strays += [f"{name}/{i}" for i in wanted if not re.fullmatch(ROOTS[name], i)]
    return strays


# --- issue 10: names ------------------------------------------------------------------------

NAMES = ["Food/Drinks", ".", "..", "__x__", "a/b/c", "%2F", "__name__", "a\x00b", "/", "😀/.."]


def test_category_names_are_data_not_paths(api: Api, db: Any) -> None:
    uid = api.get("/api/auth/me").json()["id"]
    made = {}
    for name in NAMES:
        r = api.post("/api/categories", {"name": name, "color": "red"})
        assert r.status_code == 201, (name, r.text)
        made[name] = r.json()["id"]
        assert api.get(f"/api/categories/{made[name]}").json()["name"] == name
    # Still unique per user, case- and space-insensitively.
    assert_problem(api.post("/api/categories", {"name": "FOOD/drinks", "color": "red"}), 409)
    assert_problem(api.patch(f"/api/categories/{made['.']}", {"name": " food/DRINKS "}), 409)
    # A rename frees the old name and takes the new one.
    r = api.patch(f"/api/categories/{made['a/b/c']}", {"name": "a/b/c/d"})
    assert r.status_code == 200, r.text
    assert api.post("/api/categories", {"name": "A/B/C", "color": "red"}).status_code == 201
    assert api.delete(f"/api/categories/{made['Food/Drinks']}").status_code == 204
    assert api.post("/api/categories", {"name": "food/drinks", "color": "red"}).status_code == 201
    listed = api.get("/api/categories?limit=200").json()["data"]
    assert {"a/b/c/d", "A/B/C", "food/drinks", "__x__", "..", "😀/.."} <= {
        c["name"] for c in listed
    }
    assert stray_documents(db, uid) == []


def test_paging_categories_with_path_like_names(api: Api) -> None:
    for name in ("a/b", "a/b/c", "..", "__name__", "%2F"):
        assert api.post("/api/categories", {"name": name, "color": "red"}).status_code == 201
    seen, cursor = [], None
    while True:
        r = api.get(
            "/api/categories", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        assert r.status_code == 200, r.text
        seen += [c["name"] for c in r.json()["data"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 15  # the 10 defaults and these 5


@pytest.mark.parametrize("local", ["a/b", "__x__", "%2F", "a/b/c", "__name__"])
def test_emails_with_path_characters_register_and_log_in(
    base_url: str, db: Any, local: str
) -> None:
    email = f"{local}.{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "correct horse battery", "name": "N"}
    r = requests.post(base_url + "/api/auth/register", json={**body, "preferred_currency": "BRL"})
    assert r.status_code == 201, r.text
    login = {"email": email.upper(), "password": body["password"]}
    r = requests.post(base_url + "/api/auth/login", json=login, timeout=30)
    assert r.status_code == 200, r.text
    again = requests.post(
        base_url + "/api/auth/register",
        json={**body, "email": email.upper(), "preferred_currency": "BRL"},
        timeout=30,
    )
    assert_problem(again, 409)
    wrong = requests.post(base_url + "/api/auth/login", json={**login, "password": "nope"})
    assert_problem(wrong, 401)
    credentials = [d.id for d in db.collection("credentials").list_documents()]
    assert stray_roots(db, {"credentials": credentials}) == []


# --- issue 10: tokens -------------------------------------------------------------------------

AUTHENTICATED = [
    "/api/auth/me",
    "/api/accounts",
    "/api/categories",
    "/api/transactions",
    "/api/dashboard/summary",
    "/api/budgets",
    "/api/rules",
    "/api/recurrences",
    "/api/notifications",
    "/api/imports",
]
BAD_TOKENS = [
    "vz_._secret",
    "vz_.._secret",
    "vz___main___secret",
    "vz_%2F_secret",
    "vz_a/b_secret",
    "vz___x__",
    f"vz_{UNKNOWN}_secret",
    f"vz_{UNKNOWN}0_secret",
    "vz_" + "a" * 2000 + "_secret",
]


@pytest.mark.parametrize("path", AUTHENTICATED)
def test_malformed_token_ids_are_401_on_every_function(base_url: str, path: str) -> None:
    for token in BAD_TOKENS:
        r = requests.get(base_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        body = assert_problem(r, 401)
        assert body["detail"] in ("invalid token", "invalid or revoked token"), (token, body)


@pytest.mark.parametrize("token", ["vz_._secret", "vz_.._secret", "vz_a/b_secret"])
def test_the_realtime_server_refuses_malformed_tokens(base_url: str, token: str) -> None:
    client = socketio.Client(reconnection=False)
    refused: list[Any] = []
    client.on("connect_error", refused.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(base_url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    assert refused == [{"message": "invalid token"}]


# --- issue 10: ids in routes, bodies, queries and cursors ---------------------------------------


def id_routes() -> list[tuple[str, str]]:
    """(method, path) of every route with an id in its path, from the OpenAPI document."""
    document = json.loads((ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
    return [
        (method.upper(), path)
        for path, ops in document["paths"].items()
        if "{" in path
        for method in ops
    ]


def fill(path: str, world: World, hostile: str | None = None, which: str | None = None) -> str:
    """The path with the world's ids, and `hostile` in parameter `which` (every one if None)."""
    valid = {
        "account_id": world.account,
        "category_id": world.category,
        "transaction_id": world.transaction,
        "budget_id": world.budget,
        "rule_id": world.rule,
        "job_id": world.job,
        "recurrence_id": world.recurrence,
        "import_id": world.imported,
        "row_id": world.row,
        "notification_id": world.notification,
        "token_id": UNKNOWN,
    }

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if hostile is not None and which in (None, name):
            return segment(hostile)
        return valid[name]

    return re.sub(r"\{([a-z_]+)\}", value, path)


@pytest.mark.parametrize(("method", "path"), id_routes())
def test_malformed_ids_in_routes_are_404(world: World, method: str, path: str) -> None:
    for hostile in HOSTILE:
        r = world.api.request(method, fill(path, world, hostile), json={})
        assert_problem(r, 404)


def references(w: World) -> list[tuple[str, str, Callable[[str], Any], str]]:
    """(method, path, body or query of a value, the field a 422 names)."""
    txn = {"amount": -1, "date": "2025-01-01", "description": "x"}
    money = {"amount": 1, "currency": "BRL"}
    recurrence = {
        "amount": -1,
        "description": "x",
        "schedule": {"frequency": "daily"},
        "start": "2099-01-01",
    }
    contains = {"field": "description", "op": "contains", "value": "x"}
    note = {"action": "add_note", "value": "n"}
    return [
        ("POST", "/api/transactions", lambda v: {**txn, "account_id": v}, "account_id"),
        (
            "POST",
            "/api/transactions",
            lambda v: {**txn, "account_id": w.account, "category_id": v},
            "category_id",
        ),
        (
            "POST",
            "/api/transactions",
            lambda v: {
                **txn,
                "account_id": w.account,
                "amount": -2,
                "splits": [
                    {"category_id": w.category, "amount": -1},
                    {"category_id": v, "amount": -1},
                ],
            },
            "splits.1.category_id",
        ),
        (
            "PATCH",
            f"/api/transactions/{w.transaction}",
            lambda v: {"category_id": v},
            "category_id",
        ),
        (
            "POST",
            "/api/transactions/transfers",
            lambda v: {**txn, "amount": 1, "from_account_id": v, "to_account_id": w.account},
            "from_account_id",
        ),
        (
            "POST",
            "/api/transactions/transfers",
            lambda v: {**txn, "amount": 1, "from_account_id": w.account, "to_account_id": v},
            "to_account_id",
        ),
        ("GET", "/api/transactions", lambda v: {"account_id": v}, "account_id"),
        ("GET", "/api/transactions", lambda v: {"category_id": v}, "category_id"),
        ("GET", "/api/transactions", lambda v: {"import_id": v}, "import_id"),
        (
            "POST",
            "/api/categories",
            lambda v: {"name": uuid.uuid4().hex, "color": "red", "parent_id": v},
            "parent_id",
        ),
        ("PATCH", f"/api/categories/{w.category}", lambda v: {"parent_id": v}, "parent_id"),
        ("DELETE", f"/api/categories/{UNKNOWN}", lambda v: {"reassign_to": v}, "reassign_to"),
        ("POST", "/api/budgets", lambda v: {"category_id": v}, "category_id"),
        (
            "POST",
            "/api/budgets/allocate",
            lambda v: {"budget_id": v, "month": "2025-01", "amount": money},
            "budget_id",
        ),
        (
            "POST",
            "/api/budgets/move",
            lambda v: {
                "from_budget_id": v,
                "to_budget_id": w.budget,
                "month": "2025-01",
                "amount": money,
            },
            "from_budget_id",
        ),
        (
            "POST",
            "/api/budgets/move",
            lambda v: {
                "from_budget_id": w.budget,
                "to_budget_id": v,
                "month": "2025-01",
                "amount": money,
            },
            "to_budget_id",
        ),
        (
            "POST",
            "/api/rules",
            lambda v: {
                "name": "r",
                "conditions": [{"field": "account_id", "op": "in", "value": [v]}],
                "actions": [note],
            },
            "conditions.0.account_id.value.0",
        ),
        (
            "POST",
            "/api/rules",
            lambda v: {
                "name": "r",
                "conditions": [contains],
                "actions": [{"action": "set_category", "value": v}],
            },
            "actions.0.set_category.value",
        ),
        (
            "PATCH",
            f"/api/rules/{w.rule}",
            lambda v: {"actions": [{"action": "set_category", "value": v}]},
            "actions.0.set_category.value",
        ),
        ("POST", "/api/rules/apply", lambda v: {"account_id": v}, "account_id"),
        ("POST", "/api/rules/apply", lambda v: {"rule_ids": [v]}, "rule_ids.0"),
        ("POST", "/api/recurrences", lambda v: {**recurrence, "account_id": v}, "account_id"),
        (
            "POST",
            "/api/recurrences",
            lambda v: {**recurrence, "account_id": w.account, "category_id": v},
            "category_id",
        ),
        ("PATCH", f"/api/recurrences/{w.recurrence}", lambda v: {"account_id": v}, "account_id"),
        (
            "PATCH",
            f"/api/recurrences/{w.recurrence}",
            lambda v: {"category_id": v},
            "category_id",
        ),
    ]


def send(api: Api, method: str, path: str, payload: Any) -> requests.Response:
    if method in ("GET", "DELETE"):
        return api.request(method, path, params=payload)
    return api.request(method, path, json=payload)


def test_malformed_references_in_bodies_and_queries_are_422_naming_the_field(
    world: World,
) -> None:
    for method, path, payload, field in references(world):
        for hostile in HOSTILE:
            if "\x00" in hostile and method in ("GET", "DELETE"):
                continue  # a query string cannot carry NUL through the HTTP servers
            r = send(world.api, method, path, payload(hostile))
            assert_problem(r, 422, field)


def test_a_malformed_account_in_an_upload_is_422(world: World) -> None:
    for hostile in HOSTILE:
        r = world.api.request(
            "POST",
            "/api/imports",
            files={"file": ("s.ofx", STATEMENT.read_bytes(), "application/octet-stream")},
            data={"account_id": hostile.encode()},
        )
        assert_problem(r, 422, "account_id")


def lists(w: World) -> list[str]:
    return [
        "/api/accounts",
        "/api/categories",
        "/api/transactions",
        f"/api/transactions?account_id={w.account}&q=x",
        "/api/recurrences",
        "/api/rules",
        "/api/imports",
        f"/api/imports/{w.imported}/rows",
        "/api/notifications",
    ]


BAD_CURSORS = [
    cursor_of("__name__"),
    cursor_of("__main__"),
    cursor_of(".."),
    cursor_of("."),
    cursor_of("a/b"),
    cursor_of(" a  b "),
    cursor_of("A"),
    cursor_of("2025-01-01#__main__"),
    cursor_of("0000001#__x__"),
    cursor_of("\x00"),
    "!!",
    "%2F",
]
# Categories page by name: "..", "a/b" or "__name__" are names, so fine cursors; a name key
# is trimmed, single-spaced and case-folded.
BAD_NAME_CURSORS = [cursor_of(" a  b "), cursor_of("A"), cursor_of("a\t b"), "!!", "%2F"]


@pytest.mark.parametrize("index", range(9))
def test_malformed_cursors_are_422_naming_the_cursor(world: World, index: int) -> None:
    path = lists(world)[index]
    joiner = "&" if "?" in path else "?"
    for cursor in BAD_NAME_CURSORS if path == "/api/categories" else BAD_CURSORS:
        r = world.api.get(f"{path}{joiner}cursor={quote(cursor, safe='')}")
        assert_problem(r, 422, "cursor")


# --- issue 10: internal task payloads ---------------------------------------------------------


def internal_payloads(w: World) -> list[tuple[str, str, Callable[[str], Any], str]]:
    """(function, path, payload of a value, the field a 422 names)."""
    notification = {
        "user_id": w.uid,
        "id": "import-x-failed",
        "kind": "import.failed",
        "title": "t",
        "body": "b",
    }
    out: list[tuple[str, str, Callable[[str], Any], str]] = []
    for task in ("process", "commit", "revert"):
        path = f"/api/ingest/tasks/{task}"
        out.append(("ingest", path, lambda v: {"user_id": v, "import_id": w.imported}, "user_id"))
        out.append(("ingest", path, lambda v: {"user_id": w.uid, "import_id": v}, "import_id"))
    day = {"kind": "daily", "date": "2099-01-01"}
    return [
        *out,
        ("automate", "/api/automations/user", lambda v: {**day, "user_id": v}, "user_id"),
        (
            "automate",
            "/api/automations/fanout",
            lambda v: {**day, "cursor": cursor_of(v), "page": 1},
            "cursor",
        ),
        (
            "automate",
            "/api/automations/fanout",
            lambda v: {
                "kind": "month_start",
                "date": "2099-01-01",
                "cursor": cursor_of(v),
                "page": 1,
            },
            "cursor",
        ),
        (
            "rules",
            "/api/rules/apply/run",
            lambda v: {"user_id": v, "job_id": w.job, "page": 0},
            "user_id",
        ),
        (
            "rules",
            "/api/rules/apply/run",
            lambda v: {"user_id": w.uid, "job_id": v, "page": 0},
            "job_id",
        ),
        (
            "rules",
            "/api/rules/apply/run",
            lambda v: {"user_id": w.uid, "job_id": w.job, "page": 7, "cursor": cursor_of(v)},
            "cursor",
        ),
        ("notify", "/api/notify/deliver", lambda v: {**notification, "user_id": v}, "user_id"),
        ("notify", "/api/notify/deliver", lambda v: {**notification, "id": v}, "id"),
        (
            "accounts",
            "/api/accounts/tasks/delete",
            lambda v: {"user_id": v, "account_id": w.account, "step": 0},
            "user_id",
        ),
        (
            "accounts",
            "/api/accounts/tasks/delete",
            lambda v: {"user_id": w.uid, "account_id": v, "step": 0},
            "account_id",
        ),
    ]


def error_lines(stack: Stack, function: str, trace: str) -> list[dict[str, Any]]:
    path = stack.log_dir / f"function-{function}.log"
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if trace in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("severity") == "ERROR":
                found.append(entry)
    return found


def test_malformed_internal_payloads_are_422_and_logged_at_error(
    world: World, stack: Stack
) -> None:
    for function, path, payload, field in internal_payloads(world):
        for hostile in HOSTILE:
            trace = uuid.uuid4().hex
            r = requests.post(
                stack.urls.functions[function] + path,
                json=payload(hostile),
                headers={
                    "X-Valorize-Internal": stack.secret,
                    "X-Cloud-Trace-Context": f"{trace}/1;o=1",
                },
                timeout=30,
            )
            assert_problem(r, 422, field)
            deadline = time.monotonic() + 5
            while not error_lines(stack, function, trace):
                assert time.monotonic() < deadline, (function, path, hostile, "not logged")
                time.sleep(0.1)


# --- property: any Unicode, every route family -------------------------------------------------

SPECIAL = st.sampled_from([*HOSTILE, "", " ", "\\", "#", "?", "*", "`", "\ud800", "😀", "\u202e"])
TEXT = st.text(st.characters(codec=None), max_size=40)
LONG = st.builds(
    lambda part, times: part * times,
    st.sampled_from(["a", "/", "é", "__", ".", "😀"]),
    st.integers(100, 2000),
)
JOINED = st.lists(SPECIAL | TEXT, min_size=2, max_size=4).map("".join)
VALID_LOOKING = st.from_regex(r"\A[0-9a-f]{32}\Z") | st.from_regex(r"\Ak[0-9a-f]{31}\Z")
HOSTILE_TEXT = st.one_of(SPECIAL, TEXT, LONG, JOINED, VALID_LOOKING)


def header_safe(value: str) -> bytes:
    """The value as header bytes (CR, LF and NUL cannot be sent in a header at all)."""
    cleaned = re.sub(r"[\r\n\x00]", "", value)
    return cleaned.encode("utf-8", "surrogatepass")


Slot = Callable[[World, str], requests.Response]


def _get(path: str) -> Slot:
    return lambda w, v: w.api.get(path.format(w=w, v=segment(v)))


def _cursor(path: str) -> Slot:
    def slot(w: World, v: str) -> requests.Response:
        sent = path.format(w=w)
        joiner = "&" if "?" in sent else "?"
        return w.api.get(f"{sent}{joiner}cursor={quote(cursor_of(v), safe='')}")

    return slot


def _raw_cursor(path: str) -> Slot:
    return lambda w, v: w.api.request(
        "GET", path.format(w=w), params={"cursor": v.encode("utf-8", "surrogatepass")}
    )


def _json(method: str, path: str, body: Callable[[World, str], Any]) -> Slot:
    return lambda w, v: w.api.request(method, path.format(w=w, v=segment(v)), json=body(w, v))


def _query(path: str, name: str) -> Slot:
    return lambda w, v: w.api.request(
        "GET", path.format(w=w), params={name: v.encode("utf-8", "surrogatepass")}
    )


def _bearer(path: str) -> Slot:
    return lambda w, v: requests.get(
        w.api.base + path, headers={"Authorization": b"Bearer vz_" + header_safe(v) + b"_s"}
    )


def _internal(function: str, path: str, body: Callable[[World, str], Any]) -> Slot:
    def slot(w: World, v: str) -> requests.Response:
        stack = STACK[0]
        return requests.post(
            stack.urls.functions[function] + path,
            json=body(w, v),
            headers={"X-Valorize-Internal": stack.secret},
            timeout=30,
        )

    return slot


STACK: list[Stack] = []
TXN = {"amount": -1, "date": "2025-01-01", "description": "x"}
REC = {"amount": -1, "description": "x", "schedule": {"frequency": "daily"}, "start": "2099-01-01"}
MONEY = {"amount": 1, "currency": "BRL"}


def _credentials(v: str) -> dict[str, str]:
    return {"email": f"{v}@example.com", "password": "correct horse battery"}


FAMILIES: dict[str, list[Slot]] = {
    "auth": [
        lambda w, v: requests.post(
            w.api.base + "/api/auth/register",
            json={**_credentials(v), "name": v or "n", "preferred_currency": "BRL"},
            timeout=30,
        ),
        lambda w, v: requests.post(w.api.base + "/api/auth/login", json=_credentials(v)),
        _bearer("/api/auth/me"),
        _json("DELETE", "/api/auth/tokens/{v}", lambda w, v: None),
        _json("POST", "/api/auth/tokens", lambda w, v: {"name": v}),
    ],
    "accounts": [
        _json("POST", "/api/accounts", lambda w, v: {"name": v, "type": "cash", "currency": "BRL"}),
        _get("/api/accounts/{v}"),
        _json("PATCH", "/api/accounts/{v}", lambda w, v: {"name": "x"}),
        _json("PATCH", "/api/accounts/{w.account}", lambda w, v: {"number": v, "bank_code": v}),
        _json("DELETE", "/api/accounts/{v}", lambda w, v: None),
        _cursor("/api/accounts"),
        _raw_cursor("/api/accounts"),
        _bearer("/api/accounts"),
    ],
    "categories": [
        _json("POST", "/api/categories", lambda w, v: {"name": v, "color": "red"}),
        _json(
            "POST", "/api/categories", lambda w, v: {"name": "x", "color": "red", "parent_id": v}
        ),
        _json("PATCH", "/api/categories/{w.category}", lambda w, v: {"name": v}),
        _json("PATCH", "/api/categories/{w.category}", lambda w, v: {"parent_id": v}),
        _get("/api/categories/{v}"),
        _json("DELETE", "/api/categories/{v}", lambda w, v: None),
        lambda w, v: w.api.request(
            "DELETE", f"/api/categories/{UNKNOWN}", params={"reassign_to": header_safe(v)}
        ),
        _cursor("/api/categories"),
        _raw_cursor("/api/categories"),
    ],
    "transactions": [
        _json("POST", "/api/transactions", lambda w, v: {**TXN, "account_id": v}),
        _json(
            "POST",
            "/api/transactions",
            lambda w, v: {**TXN, "account_id": w.account, "category_id": v, "description": v},
        ),
        _json(
            "POST",
            "/api/transactions/transfers",
            lambda w, v: {**TXN, "amount": 1, "from_account_id": w.account, "to_account_id": v},
        ),
        _get("/api/transactions/{v}"),
        _json("PATCH", "/api/transactions/{v}", lambda w, v: {"amount": -2}),
        _json("PATCH", "/api/transactions/{w.transaction}", lambda w, v: {"notes": v}),
        _json("DELETE", "/api/transactions/{v}", lambda w, v: None),
        _query("/api/transactions", "account_id"),
        _query("/api/transactions", "category_id"),
        _query("/api/transactions", "import_id"),
        _query("/api/transactions", "q"),
        _cursor("/api/transactions"),
        _cursor("/api/transactions?account_id={w.account}&q=x"),
        _raw_cursor("/api/transactions"),
    ],
    "budgets": [
        _json("POST", "/api/budgets", lambda w, v: {"category_id": v, "name": v}),
        _json(
            "POST",
            "/api/budgets/allocate",
            lambda w, v: {"budget_id": v, "month": "2025-01", "amount": MONEY},
        ),
        _json(
            "POST",
            "/api/budgets/move",
            lambda w, v: {
                "from_budget_id": w.budget,
                "to_budget_id": v,
                "month": "2025-01",
                "amount": MONEY,
            },
        ),
        _get("/api/budgets/{v}"),
        _json("PATCH", "/api/budgets/{v}", lambda w, v: {"name": "x"}),
        _json("PATCH", "/api/budgets/{w.budget}", lambda w, v: {"name": v}),
        _json("DELETE", "/api/budgets/{v}", lambda w, v: None),
        _query("/api/budgets/overview", "month"),
    ],
    "rules": [
        _json(
            "POST",
            "/api/rules",
            lambda w, v: {
                "name": v,
                "conditions": [
                    {"field": "description", "op": "contains", "value": v},
                    {"field": "account_id", "op": "in", "value": [v]},
                ],
                "actions": [{"action": "set_category", "value": v}],
            },
        ),
        _json(
            "POST",
            "/api/rules",
            lambda w, v: {
                "name": "r",
                "conditions": [{"field": "description", "op": "matches", "value": v}],
                "actions": [{"action": "add_note", "value": v}],
                "enabled": False,
            },
        ),
        _get("/api/rules/{v}"),
        _json("PATCH", "/api/rules/{v}", lambda w, v: {"enabled": False}),
        _json("DELETE", "/api/rules/{v}", lambda w, v: None),
        _json("POST", "/api/rules/apply", lambda w, v: {"account_id": v}),
        _json("POST", "/api/rules/apply", lambda w, v: {"rule_ids": [v]}),
        _get("/api/rules/apply/{v}"),
        _cursor("/api/rules"),
        _raw_cursor("/api/rules"),
    ],
    "recurrences": [
        _json("POST", "/api/recurrences", lambda w, v: {**REC, "account_id": v}),
        _json(
            "POST",
            "/api/recurrences",
            lambda w, v: {**REC, "account_id": w.account, "category_id": v, "description": v},
        ),
        _get("/api/recurrences/{v}"),
        _json("PATCH", "/api/recurrences/{v}", lambda w, v: {"amount": -2}),
        _json("PATCH", "/api/recurrences/{w.recurrence}", lambda w, v: {"category_id": v}),
        _json("DELETE", "/api/recurrences/{v}", lambda w, v: None),
        _cursor("/api/recurrences"),
        _raw_cursor("/api/recurrences"),
    ],
    "notifications": [
        _json("POST", "/api/notifications/{v}/read", lambda w, v: None),
        _query("/api/notifications", "unread"),
        _cursor("/api/notifications"),
        _raw_cursor("/api/notifications"),
    ],
    "imports": [
        lambda w, v: w.api.request(
            "POST",
            "/api/imports",
            files={"file": ("s.ofx", STATEMENT.read_bytes(), "application/octet-stream")},
            data={"account_id": v.encode("utf-8", "surrogatepass")},
        ),
        _get("/api/imports/{v}"),
        _get("/api/imports/{v}/rows"),
        _json("PATCH", "/api/imports/{v}/rows/{w.row}", lambda w, v: {"include": True}),
        _json("PATCH", "/api/imports/{w.imported}/rows/{v}", lambda w, v: {"include": True}),
        _json("POST", "/api/imports/{v}/commit", lambda w, v: None),
        _json("POST", "/api/imports/{v}/revert", lambda w, v: None),
        _query("/api/imports/{w.imported}/rows", "classification"),
        _cursor("/api/imports"),
        _cursor("/api/imports/{w.imported}/rows"),
        _raw_cursor("/api/imports"),
    ],
    "dashboard": [
        _get("/api/dashboard/categories/{v}"),
        _query("/api/dashboard/summary", "month"),
        _query("/api/dashboard/trend", "end"),
    ],
    "internal": [
        _internal(
            "ingest", "/api/ingest/tasks/process", lambda w, v: {"user_id": v, "import_id": v}
        ),
        _internal(
            "ingest", "/api/ingest/tasks/commit", lambda w, v: {"user_id": w.uid, "import_id": v}
        ),
        _internal(
            "automate",
            "/api/automations/user",
            lambda w, v: {"kind": "daily", "date": "2099-01-01", "user_id": v},
        ),
        _internal(
            "automate",
            "/api/automations/fanout",
            lambda w, v: {"kind": "month_start", "date": "2099-01-01", "cursor": v, "page": 1},
        ),
        _internal(
            "automate",
            "/api/automations/fanout",
            lambda w, v: {"kind": "daily", "date": "2099-01-01", "cursor": cursor_of(v), "page": 1},
        ),
        _internal(
            "rules",
            "/api/rules/apply/run",
            lambda w, v: {"user_id": w.uid, "job_id": v, "page": 0, "cursor": cursor_of(v)},
        ),
        _internal(
            "notify",
            "/api/notify/deliver",
            lambda w, v: {
                "user_id": w.uid,
                "id": v,
                "kind": "import.failed",
                "title": v or "t",
                "body": v,
                "data": {v: v},
            },
        ),
    ],
}


@pytest.fixture(scope="module")
def hostile_world(world: World, stack: Stack) -> World:
    STACK[:] = [stack]
    return world


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_any_unicode_anywhere_is_never_a_5xx(hostile_world: World, family: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(slot=st.sampled_from(FAMILIES[family]), value=HOSTILE_TEXT)
    def probe(slot: Slot, value: str) -> None:
        no_5xx(slot(hostile_world, value))

    probe()


def test_no_document_lands_outside_the_forms_the_api_issues(world: World, db: Any) -> None:
    """Runs after the property tests (file order): whatever they sent, every document is
    where the API puts documents, with an id of the form it issues."""
    assert stray_documents(db, world.uid) == []
    roots = {
        name: [d.id for d in db.collection(name).list_documents()]
        for name in ("credentials", "tokens")
    }
    assert stray_roots(db, roots) == []
