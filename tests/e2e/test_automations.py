"""Rules, recurrences and the automate function end to end: the real Firestore emulator, the
Cloud Tasks emulator delivering the fan-out and per-user tasks to the running functions.

Delivery is asynchronous, so effects are polled for with a deadline. Scheduler runs reach
every user with due work, so each test asserts only on its own fresh user, and watches its
user's run log (users/{uid}/automation_runs/<kind>-<date>) to know a task has run."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devstack.stack import Stack
from functions.registry import FUNCTIONS
from tests.e2e.conftest import Api, assert_problem, eventually, register


class Scheduler:
    """Calls the automate function as Cloud Scheduler does (locally: the shared secret)."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.urls.functions["automate"]
        self.headers = {"X-Valorize-Internal": stack.secret}

    def run(
        self, kind: str, date: str | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {"kind": kind, **({"date": date} if date else {})}
        r = requests.post(
            self.url + "/api/automations/run",
            json=body,
            headers={**self.headers, **(headers or {})},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def scheduler(stack: Stack) -> Scheduler:
    return Scheduler(stack)


@pytest.fixture(scope="module")
def db(emulator_env: dict[str, str]) -> Any:
    from valorize import bootstrap

    return bootstrap.build().firestore


def user_id(api: Api) -> str:
    r = api.get("/api/auth/me")
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def runs(db: Any, uid: str, run: str) -> int:
    snap = db.collection("users").document(uid).collection("automation_runs").document(run).get()
    return int((snap.to_dict() or {}).get("runs", 0)) if snap.exists else 0


def occurrences(api: Api, account_id: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/transactions?account_id={account_id}&limit=200")
    assert r.status_code == 200, r.text
    return sorted(
        (t for t in r.json()["data"] if t["origin"] == "recurrence"), key=lambda t: t["date"]
    )


def recurrence(api: Api, account_id: str, **over: Any) -> dict[str, Any]:
    body = {
        "account_id": account_id,
        "amount": -150_000,
        "description": "Aluguel",
        "schedule": {"frequency": "monthly", "day": 31},
        "start": "2024-01-31",
        **over,
    }
    r = api.post("/api/recurrences", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_daily_twice_creates_each_due_occurrence_once_across_a_leap_february(
    api: Api, scheduler: Scheduler, db: Any
) -> None:
    uid = user_id(api)
    housing = api.categories()["Contas & Utilidades"]["id"]
    account = api.account(opening_balance=1_000_000)
    rec = recurrence(api, account["id"], category_id=housing)
    assert rec["next_due"] == "2024-01-31" and rec["currency"] == "BRL"

    first = scheduler.run("daily", "2024-03-31")
    assert first["kind"] == "daily" and first["date"] == "2024-03-31" and first["users"] >= 1
    made = eventually(
        lambda: (o := occurrences(api, account["id"])) and len(o) == 3 and o,
        "three occurrences",
    )
    assert [t["date"] for t in made] == ["2024-01-31", "2024-02-29", "2024-03-31"]
    assert [t["id"] for t in made] == [
        f"rec-{rec['id']}-20240131",
        f"rec-{rec['id']}-20240229",
        f"rec-{rec['id']}-20240331",
    ]
    assert {(t["amount"], t["category_id"], t["description"]) for t in made} == {
        (-150_000, housing, "Aluguel")
    }
    eventually(lambda: runs(db, uid, "daily-2024-03-31") == 1, "the first user task")

    scheduler.run("daily", "2024-03-31")
    # The second run's fan-out finds nothing due for this user any more; deliver its task
    # anyway, as a redelivery would, and wait for it to have run.
    r = requests.post(
        scheduler.url + "/api/automations/user",
        json={"kind": "daily", "date": "2024-03-31", "user_id": uid},
        headers=scheduler.headers,
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["created"] == 0, r.text
    assert runs(db, uid, "daily-2024-03-31") == 2
    assert len(occurrences(api, account["id"])) == 3
    assert api.balance(account["id"]) == 1_000_000 - 3 * 150_000

    shown = api.get(f"/api/recurrences/{rec['id']}").json()
    assert (shown["materialized_through"], shown["next_due"]) == ("2024-03-31", "2024-04-30")
    feb = api.get("/api/dashboard/summary?month=2024-02").json()
    assert feb["expense"] == {"amount": 150_000, "currency": "BRL"}


def test_a_missed_day_is_caught_up_once_and_a_common_february_ends_on_the_28th(
    api: Api, scheduler: Scheduler, db: Any
) -> None:
    uid = user_id(api)
    account = api.account()
    recurrence(api, account["id"], start="2025-01-31", description="Rent")
    scheduler.run("daily", "2025-01-31")
    eventually(lambda: len(occurrences(api, account["id"])) == 1, "January's occurrence")
    # Feb 28 was missed; the Mar 31 run catches up.
    scheduler.run("daily", "2025-03-31")
    made = eventually(
        lambda: (o := occurrences(api, account["id"])) and len(o) == 3 and o, "the catch-up"
    )
    assert [t["date"] for t in made] == ["2025-01-31", "2025-02-28", "2025-03-31"]
    # A late run of the missed day creates nothing again.
    scheduler.run("daily", "2025-02-28")
    r = requests.post(
        scheduler.url + "/api/automations/user",
        json={"kind": "daily", "date": "2025-02-28", "user_id": uid},
        headers=scheduler.headers,
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["created"] == 0, r.text
    assert len(occurrences(api, account["id"])) == 3
    assert api.balance(account["id"]) == -450_000


def test_a_leap_day_yearly_recurrence(api: Api, scheduler: Scheduler) -> None:
    account = api.account()
    recurrence(
        api,
        account["id"],
        amount=-9_900,
        description="Anuidade",
        schedule={"frequency": "yearly", "month": 2, "day": 29},
        start="2023-01-01",
    )
    scheduler.run("daily", "2025-03-01")
    made = eventually(
        lambda: (o := occurrences(api, account["id"])) and len(o) == 3 and o, "three years"
    )
    assert [t["date"] for t in made] == ["2023-02-28", "2024-02-29", "2025-02-28"]


def test_rules_apply_on_create_to_occurrences_and_on_demand(api: Api, scheduler: Scheduler) -> None:
    cats = api.categories()
    transport, leisure = cats["Transporte"]["id"], cats["Lazer"]["id"]
    account = api.account()
    # History from before the rules.
    old = [
        api.txn(account["id"], -2_000, "2025-05-02", "UBER *TRIP 1"),
        api.txn(account["id"], -3_000, "2025-05-03", "Uber trip 2"),
        api.txn(account["id"], -4_000, "2025-05-04", "Padaria"),
    ]
    r = api.post(
        "/api/rules",
        {
            "name": "Uber",
            "conditions": [{"field": "description", "op": "contains", "value": "uber"}],
            "actions": [
                {"action": "set_category", "value": transport},
                {"action": "rename_description", "value": "Uber"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["position"] == 0
    r = api.post(
        "/api/rules",
        {
            "name": "Streaming",
            "conditions": [{"field": "description", "op": "matches", "value": "^netfli"}],
            "actions": [{"action": "set_category", "value": leisure}],
            "position": 0,
        },
    )
    assert r.status_code == 201, r.text
    names = [x["name"] for x in api.get("/api/rules").json()["data"]]
    assert names == ["Streaming", "Uber"]

    # On create.
    created = api.txn(account["id"], -2_500, "2025-05-05", "PAG*UBER TRIP 99")
    assert (created["description"], created["category_id"]) == ("Uber", transport)
    # On a recurrence's occurrence.
    recurrence(
        api,
        account["id"],
        amount=-5_590,
        description="Netflix.com",
        schedule={"frequency": "monthly", "day": 10},
        start="2025-05-10",
        end="2025-05-31",
    )
    scheduler.run("daily", "2025-05-10")
    [netflix] = eventually(lambda: occurrences(api, account["id"]), "the Netflix occurrence")
    assert netflix["category_id"] == leisure

    # On demand, over the history.
    r = api.post("/api/rules/apply", {"to": "2025-05-04"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert set(job) == {"id", "status"}
    done = eventually(
        lambda: (j := api.get(f"/api/rules/apply/{job['id']}").json())["status"] == "done" and j,
        "the rules job",
    )
    assert (done["processed"], done["changed"]) == (3, 2)
    listed = api.get(f"/api/transactions?category_id={transport}").json()["data"]
    assert sorted(t["id"] for t in listed) == sorted([old[0]["id"], old[1]["id"], created["id"]])
    assert {t["description"] for t in listed} == {"Uber"}
    spending = api.get("/api/dashboard/spending?month=2025-05").json()
    by_category = {c["category_id"]: c["amount"]["amount"] for c in spending["categories"]}
    assert by_category[transport] == 7_500 and by_category[leisure] == 5_590
    # Again: nothing left to change.
    again = api.post("/api/rules/apply", {}).json()
    done = eventually(
        lambda: (j := api.get(f"/api/rules/apply/{again['id']}").json())["status"] == "done" and j,
        "the second rules job",
    )
    assert (done["processed"], done["changed"]) == (5, 0)


def test_rule_and_recurrence_validation_and_isolation(api: Api, other: Api) -> None:
    theirs = other.categories()["Transporte"]["id"]
    their_account = other.account()
    mine = api.account()
    rule = {
        "name": "x",
        "conditions": [{"field": "description", "op": "contains", "value": "x"}],
        "actions": [{"action": "set_category", "value": theirs}],
    }
    assert_problem(api.post("/api/rules", rule), 422, "actions.0.value")
    bad_regex = {
        **rule,
        "conditions": [{"field": "description", "op": "matches", "value": "(unclosed"}],
        "actions": [{"action": "add_note", "value": "n"}],
    }
    assert_problem(api.post("/api/rules", bad_regex), 422, "conditions.0.value")
    accounts = {
        **rule,
        "conditions": [{"field": "account_id", "op": "in", "value": [their_account["id"]]}],
        "actions": [{"action": "add_note", "value": "n"}],
    }
    assert_problem(api.post("/api/rules", accounts), 422, "conditions.0.value")
    ok = api.post("/api/rules", {**rule, "actions": [{"action": "add_note", "value": "n"}]})
    assert ok.status_code == 201, ok.text
    assert_problem(other.get(f"/api/rules/{ok.json()['id']}"), 404)
    assert_problem(other.delete(f"/api/rules/{ok.json()['id']}"), 404)
    assert_problem(api.post("/api/rules/apply", {"rule_ids": ["nope"]}), 422, "rule_ids.0")

    body = {
        "account_id": their_account["id"],
        "amount": -100,
        "description": "x",
        "schedule": {"frequency": "weekly", "weekday": "friday"},
        "start": "2025-01-01",
    }
    assert_problem(api.post("/api/recurrences", body), 422, "account_id")
    assert_problem(
        api.post("/api/recurrences", {**body, "account_id": mine["id"], "amount": 0}), 422, "amount"
    )
    made = api.post("/api/recurrences", {**body, "account_id": mine["id"]})
    assert made.status_code == 201, made.text
    assert made.json()["next_due"] == "2025-01-03"
    assert_problem(other.get(f"/api/recurrences/{made.json()['id']}"), 404)
    patched = api.patch(f"/api/recurrences/{made.json()['id']}", {"description": "y"})
    assert patched.status_code == 200 and patched.json()["description"] == "y"
    listed = api.get("/api/recurrences").json()
    assert [x["id"] for x in listed["data"]] == [made.json()["id"]]
    assert api.delete(f"/api/recurrences/{made.json()['id']}").status_code == 204


def test_scheduler_and_task_endpoints_refuse_users_and_anonymous(
    stack: Stack, api: Api, base_url: str
) -> None:
    automate = stack.urls.functions["automate"]
    rules = stack.urls.functions["rules"]
    targets = [
        (automate + "/api/automations/run", {"kind": "daily"}),
        (
            automate + "/api/automations/user",
            {"kind": "daily", "date": "2025-01-01", "user_id": "u"},
        ),
        (automate + "/api/automations/fanout", {"kind": "daily", "date": "2025-01-01"}),
        (rules + "/api/rules/apply/run", {"user_id": "u", "job_id": "j", "page": 0}),
    ]
    for url, body in targets:
        for headers in (
            {},
            {"Authorization": f"Bearer {api.token}"},
            {"X-Valorize-Internal": "not-the-secret"},
        ):
            r = requests.post(url, json=body, headers=headers, timeout=30)
            assert r.status_code == 401, (url, headers.keys(), r.text)
            assert r.headers["Content-Type"].startswith("application/problem+json")


def test_the_gateway_never_forwards_an_internal_path(stack: Stack, base_url: str) -> None:
    """Like the load balancer (same registry): even with the right credentials, a task or
    scheduler path is not reachable through the front door."""
    paths = [
        "/api/automations/run",
        "/api/automations/user",
        "/api/rules/apply/run",
        "/api/ingest/tasks/process",
        "/api/notify/deliver",
    ]
    assert all(any(f.is_internal_path(p) for f in FUNCTIONS.values()) for p in paths)
    for path in paths:
        r = requests.post(
            base_url + path,
            json={"kind": "daily"},
            headers={"X-Valorize-Internal": stack.secret},
            timeout=30,
        )
        assert r.status_code == 404, (path, r.text)
        assert r.headers["Content-Type"].startswith("application/problem+json")
    # The public routes of the same functions still go through.
    assert requests.get(base_url + "/api/rules/healthz", timeout=30).status_code == 200
    assert requests.get(base_url + "/api/ingest/healthz", timeout=30).status_code == 200


def test_month_start_reaches_every_user_and_summarises_the_month_that_ended(
    stack: Stack, base_url: str, scheduler: Scheduler, db: Any
) -> None:
    quiet, busy = register(base_url), register(base_url)
    account = busy.account()
    busy.txn(account["id"], 300_000, "2026-01-05", "Salário")
    busy.txn(account["id"], -45_000, "2026-01-20", "Mercado")
    # No date in the body (as Cloud Scheduler sends it): the schedule time decides.
    accepted = scheduler.run(
        "month_start", headers={"X-CloudScheduler-ScheduleTime": "2026-02-01T04:00:00Z"}
    )
    assert accepted["date"] == "2026-02-01" and accepted["users"] >= 2
    for who in (quiet, busy):
        uid = user_id(who)
        eventually(
            lambda uid=uid: runs(db, uid, "month_start-2026-02-01") >= 1,  # type: ignore[misc]
            "every user's month start task",
            timeout=180,
        )
    if "notifications" not in stack.urls.functions:
        return
    found = eventually(
        lambda: [
            n
            for n in busy.get("/api/notifications?limit=50").json().get("data", [])
            if n.get("id") == "month-summary-2026-01"
        ],
        "the month summary notification",
    )
    assert found[0]["kind"] == "month.summary"
    quiet_list = quiet.get("/api/notifications?limit=50").json().get("data", [])
    assert not [n for n in quiet_list if n.get("kind") == "month.summary"]
