"""Notifications end to end: alerts raised by ledger writes travel through the Cloud Tasks
emulator to the notify function, which stores them in Firestore, pushes them to Socket.IO
clients connected through the gateway and emails them to the SMTP sink; the inbox and
preferences through the notifications function.

"Nothing more happened" is checked with a sentinel: the emulator runs its (single, local)
queue in order, one task at a time, so once a task enqueued after the writes has been
delivered, every task those writes enqueued has been delivered too.
"""

from __future__ import annotations

import contextlib
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import socketio

from devstack.stack import Stack
from tests.e2e.conftest import Api, assert_problem
from valorize.config import INTERNAL_HEADER
from valorize.entrypoints.notification_schemas import (
    NotificationList,
    NotificationOut,
    PreferencesOut,
)

TIMEOUT = 30.0


def wait_until(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Sockets:
    """A python-socketio client through the gateway, keeping `notification.created`."""

    def __init__(self, url: str, token: str) -> None:
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on("notification.created", self.received.put)
        self.client.connect(url, auth={"token": token}, transports=["websocket"], wait_timeout=10)

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        try:
            envelope = self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no notification.created event") from None
        return dict(envelope["data"])

    def pending(self) -> list[dict[str, Any]]:
        out = []
        while not self.received.empty():
            out.append(self.received.get_nowait()["data"])
        return out


@contextlib.contextmanager
def sockets(stack: Stack, api: Api) -> Iterator[Sockets]:
    assert stack.urls.realtime_url
    listener = Sockets(stack.urls.realtime_url, str(api.token))
    try:
        yield listener
    finally:
        listener.client.disconnect()


@pytest.fixture
def me(api: Api) -> str:
    r = api.get("/api/auth/me")
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@pytest.fixture
def notify_url(stack: Stack) -> str:
    return stack.urls.functions["notify"] + "/api/notify/deliver"


@pytest.fixture
def internal(stack: Stack) -> dict[str, str]:
    return {INTERNAL_HEADER: stack.secret}


def mail_to(stack: Stack, address: str) -> list[dict[str, Any]]:
    assert stack.urls.smtp_api_url
    r = requests.get(f"{stack.urls.smtp_api_url}/messages", params={"to": address}, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json())


def inbox(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/api/notifications", params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    NotificationList.model_validate(r.json())
    return list(r.json()["data"])


def of_kind(api: Api, kind: str) -> list[dict[str, Any]]:
    return [n for n in inbox(api) if n["kind"] == kind]


@pytest.fixture
def settle(emulator_env: dict[str, str], api: Api, me: str) -> Callable[[], None]:
    """Wait until every task enqueued so far has been delivered (see the module docstring)."""
    from valorize import bootstrap
    from valorize.domain.notifications import NotificationKind, NotificationRequest

    notifier = bootstrap.build().notifier

    def run() -> None:
        sentinel = f"sentinel-{uuid.uuid4().hex}"
        notifier.notify(NotificationRequest(me, sentinel, NotificationKind.MONTH_SUMMARY, "s", "s"))
        wait_until(lambda: any(n["id"] == sentinel for n in inbox(api)), "the sentinel")

    return run


def payload(
    user_id: str, id: str = "import-failed-x", kind: str = "import.failed"
) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "id": id,
        "kind": kind,
        "title": "Import failed",
        "body": "statement.ofx: not an OFX file",
        "data": {"import_id": "x", "reason": "not an OFX file"},
    }


# --- the internal endpoint --------------------------------------------------------------------


def test_internal_endpoint_refuses_user_tokens_and_anonymous_calls(
    api: Api, me: str, base_url: str, notify_url: str
) -> None:
    body = payload(me)
    # The gateway, like the load balancer, does not route the internal function at all.
    routed = requests.post(base_url + "/api/notify/deliver", json=body, timeout=10)
    assert_problem(routed, 404)
    for url in (notify_url,):
        assert_problem(requests.post(url, json=body, timeout=10), 401)
        as_user = requests.post(
            url, json=body, headers={"Authorization": f"Bearer {api.token}"}, timeout=10
        )
        assert_problem(as_user, 401)
        forged = requests.post(url, json=body, headers={INTERNAL_HEADER: "guess"}, timeout=10)
        assert_problem(forged, 401)
    assert inbox(api) == []


def test_a_bad_payload_is_422_not_a_retry_loop(notify_url: str, internal: dict[str, str]) -> None:
    r = requests.post(notify_url, json={"user_id": "u"}, headers=internal, timeout=10)
    assert_problem(r, 422)


# --- delivery ---------------------------------------------------------------------------------


def test_a_redelivered_task_stores_pushes_and_emails_once(
    stack: Stack, api: Api, me: str, notify_url: str, internal: dict[str, str]
) -> None:
    with sockets(stack, api) as live:
        first = requests.post(notify_url, json=payload(me), headers=internal, timeout=30)
        assert first.status_code == 200, first.text
        assert first.json() | {"dropped": None} == {
            "id": "import-failed-x",
            "stored": True,
            "pushed": True,
            "emailed": True,
            "dropped": None,
        }
        again = requests.post(notify_url, json=payload(me), headers=internal, timeout=30)
        assert again.status_code == 200, again.text
        assert (again.json()["stored"], again.json()["pushed"], again.json()["emailed"]) == (
            False,
            False,
            False,
        )
        pushed = live.next()
        (stored,) = inbox(api)
        # The socket payload is the notification as the API renders it.
        assert pushed == stored
        NotificationOut.model_validate(pushed)
        assert stored["kind"] == "import.failed" and not stored["read"]
        assert stored["data"] == {"import_id": "x", "reason": "not an OFX file"}
        time.sleep(0.5)  # a second event, had there been one, would be here by now
        assert live.pending() == []
    (mail,) = mail_to(stack, api.email)  # type: ignore[attr-defined]
    assert mail["subject"] == "Import failed"
    assert "not an OFX file" in mail["body"] and "not an OFX file" in (mail["html"] or "")


def test_deliveries_racing_each_other_push_and_email_once(
    stack: Stack, api: Api, me: str, notify_url: str, internal: dict[str, str]
) -> None:
    """At-least-once delivery with duplicates in flight together (the queue drain sends
    them): each notification is stored, pushed and emailed by exactly one of them, whatever
    Unicode its text holds."""
    body = payload(me, id="import-failed-race") | {
        "title": "Importação falhou ﷺ 🚫 \u202e",
        "body": "extrato/2025 ✓ — \U0001d518\U0001d52b\u0000\U0010fffd",
    }

    def deliver(_: int) -> requests.Response:
        # As the queue does: a 503 (another delivery holds the email) is retried later.
        while True:
            answer = requests.post(notify_url, json=body, headers=internal, timeout=60)
            if answer.status_code != 503:
                return answer
            assert int(answer.headers["Retry-After"]) >= 1
            time.sleep(0.2)

    with sockets(stack, api) as live, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(deliver, range(8)))
        assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
        assert sum(a.json()["pushed"] for a in answers) <= 1
        pushed = live.next()
        assert pushed["id"] == "import-failed-race" and pushed["title"] == body["title"]
        time.sleep(0.5)  # a second event, had there been one, would be here by now
        assert live.pending() == []
    (stored,) = inbox(api)
    assert stored["body"] == body["body"]
    (mail,) = mail_to(stack, api.email)  # type: ignore[attr-defined]
    assert mail["subject"] == body["title"]


def test_a_kind_the_user_does_not_want_emailed_is_only_stored(
    stack: Stack, api: Api, me: str, notify_url: str, internal: dict[str, str]
) -> None:
    body = payload(me, "done-1", "import.finished")
    r = requests.post(notify_url, json=body, headers=internal, timeout=30)
    assert r.status_code == 200 and r.json()["stored"] and not r.json()["emailed"], r.text
    assert mail_to(stack, api.email) == []  # type: ignore[attr-defined]
    # Opting in emails the next ones of that kind.
    r = api.patch("/api/notifications/preferences", {"email": {"import.finished": True}})
    assert r.status_code == 200 and r.json()["email"]["import.finished"] is True, r.text
    body = payload(me, "done-2", "import.finished")
    assert requests.post(notify_url, json=body, headers=internal, timeout=30).json()["emailed"]
    assert len(mail_to(stack, api.email)) == 1  # type: ignore[attr-defined]


# --- the inbox and preferences ----------------------------------------------------------------


def test_inbox_read_unread_and_counts(
    api: Api, other: Api, me: str, notify_url: str, internal: dict[str, str]
) -> None:
    for i in range(3):
        body = payload(me, f"n{i}", "import.finished")
        assert requests.post(notify_url, json=body, headers=internal, timeout=30).ok
    assert [n["id"] for n in inbox(api)] == ["n2", "n1", "n0"]
    first = api.get("/api/notifications", params={"limit": 2}).json()
    assert [n["id"] for n in first["data"]] == ["n2", "n1"] and first["next_cursor"]
    rest = api.get("/api/notifications", params={"cursor": first["next_cursor"]}).json()
    assert [n["id"] for n in rest["data"]] == ["n0"] and rest["next_cursor"] is None
    assert api.get("/api/notifications/unread-count").json() == {"unread": 3}

    r = api.post("/api/notifications/n1/read")
    assert r.status_code == 200 and r.json()["read"] and r.json()["read_at"], r.text
    assert api.post("/api/notifications/n1/read").json()["read_at"] == r.json()["read_at"]
    assert [n["id"] for n in inbox(api, unread="true")] == ["n2", "n0"]
    assert api.get("/api/notifications/unread-count").json() == {"unread": 2}

    # Another user sees none of it and cannot touch it.
    assert inbox(other) == []
    assert_problem(other.post("/api/notifications/n1/read"), 404)
    assert other.post("/api/notifications/read-all").json() == {"unread": 0}

    assert api.post("/api/notifications/read-all").json() == {"unread": 0}
    assert inbox(api, unread="true") == []
    assert_problem(api.post("/api/notifications/nope/read"), 404)


def test_preferences_defaults_and_validation(api: Api) -> None:
    r = api.get("/api/notifications/preferences")
    assert r.status_code == 200, r.text
    prefs = PreferencesOut.model_validate(r.json())
    on = {k.value for k, v in prefs.email.items() if v}
    assert on == {"import.failed", "budget.overspent", "account.low_balance"}
    assert r.json()["large_transaction_threshold"] is None and r.json()["currency"] == "BRL"
    assert_problem(api.patch("/api/notifications/preferences", {"email": {"nope": True}}), 422)
    for bad in (0, -1, 1.5, "100"):
        r = api.patch("/api/notifications/preferences", {"large_transaction_threshold": bad})
        assert_problem(r, 422, "large_transaction_threshold")
    r = api.patch("/api/notifications/preferences", {"large_transaction_threshold": 5_000})
    assert r.json()["large_transaction_threshold"] == 5_000
    r = api.patch("/api/notifications/preferences", {"email": {"account.low_balance": False}})
    # What was not given stays.
    assert r.json()["large_transaction_threshold"] == 5_000
    assert r.json()["email"]["account.low_balance"] is False
    r = api.patch("/api/notifications/preferences", {"large_transaction_threshold": None})
    assert r.json()["large_transaction_threshold"] is None
    assert_problem(Api(api.base).get("/api/notifications/preferences"), 401)


# --- alerts through Cloud Tasks ---------------------------------------------------------------


def test_low_balance_crossing_notifies_once_a_day(
    stack: Stack, api: Api, settle: Callable[[], None]
) -> None:
    account = api.account(opening_balance=10_000, low_balance_threshold=5_000)
    assert account["low_balance_threshold"] == 5_000
    with sockets(stack, api) as live:
        api.txn(account["id"], -3_000)  # 7,000: above
        api.txn(account["id"], -3_000)  # 4,000: crossed
        pushed = live.next()
        assert pushed["kind"] == "account.low_balance"
        assert pushed["data"]["account_id"] == account["id"]
        assert pushed["data"]["balance"] == {"amount": 4_000, "currency": "BRL"}
        (stored,) = wait_until(lambda: of_kind(api, "account.low_balance"), "the alert")
        assert stored == pushed
        # Still below, back above, and below again the same day: the same notification.
        api.txn(account["id"], -500)
        api.txn(account["id"], 10_000)
        api.txn(account["id"], -10_000)
        settle()
        assert [n["id"] for n in of_kind(api, "account.low_balance")] == [stored["id"]]
        assert [e["kind"] for e in live.pending()] == ["month.summary"]  # the sentinel
    (mail,) = wait_until(lambda: mail_to(stack, api.email), "the email")  # type: ignore[attr-defined]
    assert mail["subject"] == "Low balance: Checking"
    assert "BRL 40.00" in mail["body"] and "BRL 50.00" in mail["body"]
    time.sleep(0.3)
    assert len(mail_to(stack, api.email)) == 1  # type: ignore[attr-defined]


def test_changing_the_threshold_takes_effect_and_null_turns_it_off(
    api: Api, settle: Callable[[], None]
) -> None:
    account = api.account(opening_balance=10_000)
    assert account["low_balance_threshold"] is None
    r = api.patch(f"/api/accounts/{account['id']}", {"low_balance_threshold": 9_000})
    assert r.status_code == 200 and r.json()["low_balance_threshold"] == 9_000, r.text
    api.txn(account["id"], -2_000)
    wait_until(lambda: of_kind(api, "account.low_balance"), "the alert")
    r = api.patch(f"/api/accounts/{account['id']}", {"low_balance_threshold": None})
    assert r.json()["low_balance_threshold"] is None
    api.txn(account["id"], 5_000)
    api.txn(account["id"], -5_000)
    settle()
    assert len(of_kind(api, "account.low_balance")) == 1


def test_large_transaction_notifies(api: Api, settle: Callable[[], None]) -> None:
    account = api.account(opening_balance=0)
    api.txn(account["id"], -900_000)  # no threshold yet: nothing
    r = api.patch("/api/notifications/preferences", {"large_transaction_threshold": 100_000})
    assert r.status_code == 200, r.text
    api.txn(account["id"], -99_999)
    big = api.txn(account["id"], -100_000, description="Notebook")
    (alert,) = wait_until(lambda: of_kind(api, "transaction.large"), "the alert")
    assert alert["id"] == f"large-{big['id']}"
    assert alert["data"]["transaction_id"] == big["id"]
    assert alert["data"]["amount"] == {"amount": -100_000, "currency": "BRL"}
    assert "Notebook" in alert["body"]
    settle()
    assert len(of_kind(api, "transaction.large")) == 1


def test_a_rules_job_that_overspends_an_envelope_notifies(api: Api) -> None:
    """The rules function's job pages recategorise transactions, and the alert they raise is a
    notify task on the notifications queue: the function must declare (and so be granted)
    that queue, or the alert is refused and lost."""
    account = api.account(opening_balance=1_000_000)
    food = api.categories()["Alimentação"]["id"]
    budget = api.post("/api/budgets", {"category_id": food}).json()
    r = api.post(
        "/api/budgets/allocate",
        {
            "budget_id": budget["id"],
            "month": "2025-04",
            "amount": {"amount": 10_000, "currency": "BRL"},
        },
    )
    assert r.status_code == 200, r.text
    api.txn(account["id"], -15_000, "2025-04-12", "SUPERMERCADO ÉPICO")  # no category yet
    rule = {
        "name": "Mercado",
        "conditions": [{"field": "description", "op": "contains", "value": "mercado"}],
        "actions": [{"action": "set_category", "value": food}],
    }
    assert api.post("/api/rules", rule).status_code == 201
    job = api.post("/api/rules/apply", {}).json()
    wait_until(
        lambda: api.get(f"/api/rules/apply/{job['id']}").json()["status"] == "done", "the job"
    )
    (alert,) = wait_until(lambda: of_kind(api, "budget.overspent"), "the alert")
    assert alert["id"] == f"overspent-{budget['id']}-2025-04"


def test_overspent_envelope_notifies_once_a_month(
    stack: Stack, api: Api, settle: Callable[[], None]
) -> None:
    account = api.account(opening_balance=1_000_000)
    food = api.categories()["Alimentação"]["id"]
    budget = api.post("/api/budgets", {"category_id": food}).json()
    r = api.post(
        "/api/budgets/allocate",
        {
            "budget_id": budget["id"],
            "month": "2025-03",
            "amount": {"amount": 10_000, "currency": "BRL"},
        },
    )
    assert r.status_code == 200, r.text
    api.txn(account["id"], -6_000, category_id=food)  # available 4,000
    api.txn(account["id"], -5_000, category_id=food)  # available -1,000: overspent
    (alert,) = wait_until(lambda: of_kind(api, "budget.overspent"), "the alert")
    assert alert["id"] == f"overspent-{budget['id']}-2025-03"
    assert alert["data"]["available"] == {"amount": -1_000, "currency": "BRL"}
    api.txn(account["id"], -100, category_id=food)  # still overspent in March
    settle()
    assert len(of_kind(api, "budget.overspent")) == 1
    (mail,) = mail_to(stack, api.email)  # type: ignore[attr-defined]
    assert mail["subject"] == "Envelope overspent: Alimentação"
