"""Every function's shipped archive runs on its own: one real request per route family,
through the artifact's own server (see conftest.py for how it is built and started)."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.ports import free_ports
from devstack.stack import Stack
from functions import package
from functions.registry import FUNCTIONS, TASKS_INVOKER
from tests.artifacts.conftest import (
    INVOKERS,
    Artifact,
    CaptureServer,
    start,
)
from tests.support.oidc import SigningKey

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "statements"
Check = Callable[["Client"], None]


class Client:
    """A registered user, the artifacts, and a way to call them as Cloud Tasks would."""

    def __init__(
        self,
        stack: Stack,
        artifacts: dict[str, Artifact],
        key: SigningKey,
        capture: CaptureServer,
    ) -> None:
        self.artifacts = artifacts
        self.key = key
        self.capture = capture
        self.email = f"artifact-{uuid.uuid4().hex[:10]}@example.com"
        r = self.call(
            "auth",
            "POST",
            "/api/auth/register",
            json={
                "email": self.email,
                "password": "correct horse battery",
                "name": "Art",
                "preferred_currency": "BRL",
            },
            token=None,
        )
        assert r.status_code == 201, r.text
        self.token = r.json()["token"]
        self.user_id = self.call("auth", "GET", "/api/auth/me").json()["id"]

    def call(
        self,
        function: str,
        method: str,
        path: str,
        token: str | bool | None = True,
        **kw: Any,
    ) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if token is True:
            headers["Authorization"] = f"Bearer {self.token}"
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.artifacts[function].url + path
        return requests.request(method, url, headers=headers, timeout=60, **kw)

    def ok(self, function: str, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.call(function, method, path, **kw)
        assert r.status_code == status, (function, method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def internal(self, function: str, path: str, body: dict[str, Any]) -> requests.Response:
        """As Cloud Tasks delivers a task: the invoker's OIDC token for the function's URL."""
        token = self.key.token(self.artifacts[function].audience, INVOKERS[TASKS_INVOKER])
        return self.call(function, "POST", path, token=token, json=body)


@pytest.fixture(scope="module")
def client(
    stack: Stack, artifacts: dict[str, Artifact], signing_key: SigningKey, capture: CaptureServer
) -> Client:
    return Client(stack, artifacts, signing_key, capture)


def account(c: Client, **over: Any) -> dict[str, Any]:
    body = {"name": "Checking", "type": "checking", "currency": "BRL", **over}
    return dict(c.ok("accounts", "POST", "/api/accounts", 201, json=body))


# --- one check per function, one request per route family -----------------------------------


def check_auth(c: Client) -> None:
    assert c.ok("auth", "GET", "/api/auth/me")["email"] == c.email
    login = {"email": c.email, "password": "correct horse battery"}
    assert c.ok("auth", "POST", "/api/auth/login", json=login, token=None)["token"]
    assert c.ok("auth", "GET", "/api/auth/tokens")["data"]


def check_accounts(c: Client) -> None:
    created = account(c, opening_balance=1_000)
    assert c.ok("accounts", "GET", f"/api/accounts/{created['id']}")["id"] == created["id"]
    assert c.ok("accounts", "GET", "/api/accounts")["data"]


def check_categories(c: Client) -> None:
    c.ok(
        "categories",
        "POST",
        "/api/categories",
        201,
        json={"name": "Artefatos ✓", "color": "teal"},
    )
    assert c.ok("categories", "GET", "/api/categories?limit=200")["data"]


def check_transactions(c: Client) -> None:
    # Falling below the threshold raises a low-balance alert: a notify task (Cloud Tasks).
    watched = account(c, opening_balance=10_000, low_balance_threshold=5_000)
    body = {
        "account_id": watched["id"],
        "amount": -7_000,
        "date": dt.date.today().isoformat(),
        "description": "Aluguel",
    }
    created = c.ok("transactions", "POST", "/api/transactions", 201, json=body)
    assert c.ok("transactions", "GET", f"/api/transactions/{created['id']}")["amount"] == -7_000
    assert c.ok("transactions", "GET", "/api/transactions")["data"]
    task = c.capture.wait_for(
        lambda t: t.path == "/api/notify/deliver" and t.body.get("user_id") == c.user_id
    )
    assert task.body["kind"] == "account.low_balance", task.body


def check_dashboard(c: Client) -> None:
    month = dt.date.today().isoformat()[:7]
    assert "income" in str(c.ok("dashboard", "GET", f"/api/dashboard/summary?month={month}"))
    c.ok("dashboard", "GET", "/api/dashboard/recent")


def check_budgets(c: Client) -> None:
    category = c.ok("categories", "GET", "/api/categories?limit=200")["data"][0]
    c.ok("budgets", "POST", "/api/budgets", 201, json={"category_id": category["id"]})
    month = dt.date.today().isoformat()[:7]
    c.ok("budgets", "GET", f"/api/budgets/overview?month={month}")


def check_rules(c: Client) -> None:
    rule = {"name": "Café", "conditions": [{"field": "description", "op": "contains",
            "value": "café"}], "actions": {"tags": ["café"]}}  # fmt: skip
    r = c.call("rules", "POST", "/api/rules", json=rule)
    assert r.status_code in (201, 422), r.text  # the route family runs; the shape is rules'
    assert "data" in c.ok("rules", "GET", "/api/rules")
    # A job: its first page is a Cloud Task on this function, delivered to the capture server.
    job = c.ok("rules", "POST", "/api/rules/apply", 202, json={})
    task = c.capture.wait_for(
        lambda t: t.path == "/api/rules/apply/run" and t.body.get("job_id") == job["id"]
    )
    # ... and the internal endpoint accepts it with the invoker's OIDC token, and only so.
    r = c.internal("rules", "/api/rules/apply/run", task.body)
    assert r.status_code == 200, r.text
    unsigned = c.call("rules", "POST", "/api/rules/apply/run", token=None, json=task.body)
    assert unsigned.status_code == 401


def check_recurrences(c: Client) -> None:
    target = account(c)
    body = {
        "account_id": target["id"],
        "amount": -3_000,
        "description": "Academia",
        "schedule": {"frequency": "monthly", "day": 5},
        "start": dt.date.today().isoformat(),
    }
    r = c.call("recurrences", "POST", "/api/recurrences", json=body)
    assert r.status_code == 201, r.text
    assert c.ok("recurrences", "GET", "/api/recurrences")["data"]


def check_automate(c: Client) -> None:
    # Cloud Scheduler's call (OIDC), fanning out one task per user on the automations queue.
    day = f"{2030 + uuid.uuid4().int % 60}-{1 + uuid.uuid4().int % 12:02d}-01"
    r = c.internal("automate", "/api/automations/run", {"kind": "month_start", "date": day})
    assert r.status_code == 202, r.text
    c.capture.wait_for(
        lambda t: (
            t.path == "/api/automations/user"
            and t.body.get("user_id") == c.user_id
            and t.body.get("date") == day
        )
    )
    as_user = c.call("automate", "POST", "/api/automations/run", json={"kind": "daily"})
    assert as_user.status_code == 401


def check_notify(c: Client) -> None:
    body = {
        "user_id": c.user_id,
        "id": f"artifact-{uuid.uuid4().hex[:8]}",
        "kind": "import.failed",
        "title": "Import failed",
        "body": "statement.ofx: not an OFX file",
        "data": {"import_id": "x", "reason": "not an OFX file"},
    }
    r = c.internal("notify", "/api/notify/deliver", body)
    assert r.status_code == 200, r.text
    assert c.call("notify", "POST", "/api/notify/deliver", json=body).status_code == 401


def check_notifications(c: Client) -> None:
    c.ok("notifications", "GET", "/api/notifications")
    c.ok("notifications", "GET", "/api/notifications/unread-count")
    c.ok("notifications", "GET", "/api/notifications/preferences")


def check_ingest(c: Client) -> None:
    target = account(c)
    data = (FIXTURES / "bank_v2.ofx").read_bytes()
    files = {"file": ("statement.ofx", io.BytesIO(data), "application/octet-stream")}
    r = c.call("ingest", "POST", "/api/imports", files=files, data={"account_id": target["id"]})
    assert r.status_code == 202, r.text
    record = r.json()
    # Stored in Cloud Storage, then a process task on the imports queue...
    task = c.capture.wait_for(
        lambda t: t.path == "/api/ingest/tasks/process" and t.body.get("import_id") == record["id"]
    )
    # ... which the worker runs when Cloud Tasks delivers it with the invoker's token.
    done = c.internal("ingest", "/api/ingest/tasks/process", task.body)
    assert done.status_code == 200, done.text
    staged = c.ok("ingest", "GET", f"/api/imports/{record['id']}")
    assert staged["status"] == "ready", staged
    assert c.ok("ingest", "GET", f"/api/imports/{record['id']}/rows")["data"]


CHECKS: dict[str, Check] = {
    "auth": check_auth,
    "accounts": check_accounts,
    "categories": check_categories,
    "transactions": check_transactions,
    "dashboard": check_dashboard,
    "budgets": check_budgets,
    "rules": check_rules,
    "recurrences": check_recurrences,
    "automate": check_automate,
    "notify": check_notify,
    "notifications": check_notifications,
    "ingest": check_ingest,
}


def test_every_registered_function_has_a_check() -> None:
    assert set(CHECKS) == set(FUNCTIONS)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_the_archive_runs_with_only_its_requirements(
    name: str, client: Client, artifacts: dict[str, Artifact]
) -> None:
    health = client.call(name, "GET", f"/api/{name}/healthz", token=None)
    assert health.status_code == 200, health.text
    CHECKS[name](client)


def test_an_archive_missing_a_dependency_fails_where_it_is_needed(
    stack: Stack,
    client: Client,
    capture: CaptureServer,
    certs_url: str,
    tmp_path: Path,
) -> None:
    """The check above has teeth: the rules archive without the tasks extra (what every
    enqueuing function shipped before) starts, then fails its first enqueue."""
    source = tmp_path / "functions"
    shutil_copy = __import__("shutil").copytree
    shutil_copy(package.REPO_ROOT / "functions" / "rules", source / "rules")
    requirements = source / "rules" / "requirements.txt"
    requirements.write_text(
        requirements.read_text().replace("valorize-shared[tasks,oidc]", "valorize-shared[oidc]")
    )
    archive = package.build("rules", tmp_path / "dist", functions_dir=source)
    (port,) = free_ports(1)
    broken = start(
        stack, FUNCTIONS["rules"], archive, tmp_path / "rules", port, capture.url, certs_url
    )
    try:
        r = requests.post(
            broken.url + "/api/rules/apply",
            json={},
            headers={"Authorization": f"Bearer {client.token}"},
            timeout=60,
        )
        assert r.status_code == 500, r.text
        log = broken.server.log_path.read_text()
        # google.cloud is a namespace package: the missing module shows as an ImportError.
        assert "cannot import name 'tasks_v2'" in log, log[-3000:]
    finally:
        broken.server.stop()
