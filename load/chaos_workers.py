"""The fault suite's worker kills (load/chaos.py, issue 12): a Cloud Tasks worker SIGKILLed in
the middle of a long task, started again, the task redelivered by the Cloud Tasks emulator
(with backoff, as Cloud Tasks retries), and the result checked for exactly once.

- `ingest`: a statement of `--lines` lines (load/samples.py's OFX) uploaded through the
  gateway; the ingest function is killed while the statement is being staged (rows staged
  between 0 and the total), and again while the import is being committed (transactions
  written that no settled chunk counts yet). Exactly once: one
  transaction per statement line (by FITID), the import's `committed` = its rows, one account
  created, its balance = the sum of the file's amounts.
- `automate`: a user with `--recurrences` daily recurrences, each `--days` occurrences due,
  and a rule that categorizes and renames them; the daily run is started as Cloud Scheduler
  does, and the automate function is killed while the user's task is materializing them.
  Exactly once: one transaction per (recurrence, day), every one with the rule's category
  and name, the balance = their sum.

After each: the integrity check (service/integrity.py) on the user, and the tasks emulator's
per-queue counts (tasks-dispatch.json) for the deliveries of the scenario (attempts, failed
attempts, tasks given up)."""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import requests

from devstack.process import ManagedProcess
from devstack.services import TasksEmulator
from devstack.stack import Stack
from load.samples import ofx_sample
from valorize.domain.statements import StatementLine, parse_statement

PASSWORD = "chaos-password-1"
TIMEOUT = 60.0
# How long a scenario may take to reach a kill point, or to finish after one.
DEADLINE = 300.0
POLL = 0.1
# Kill once this share of the work is written: well inside it, not at its first write.
KILL_PAST = 0.25
# An import still at work (or its function not answering).
WORKING = ("uploaded", "processing", "committing", "unknown")


@dataclass
class User:
    """One registered user of the API, through the gateway."""

    base: str
    token: str = ""
    session: requests.Session = field(default_factory=requests.Session)
    # Answers other than 2xx to `poll`, by status (0: no answer).
    errors: collections.Counter[int] = field(default_factory=collections.Counter)
    no_retry_after: int = 0

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.session.request(
            method, self.base + path, json=body, headers=headers, timeout=TIMEOUT, **kw
        )

    def poll(self, path: str) -> Any:
        """GET `path` as a client polling its status would: an answer that is not a 2xx (a
        function down behind the gateway) is counted and means "ask again"."""
        try:
            answer = self.call("GET", path)
        except requests.RequestException:
            self.errors[0] += 1
            return None
        if not answer.ok:
            self.errors[answer.status_code] += 1
            if answer.status_code == 503 and "Retry-After" not in answer.headers:
                self.no_retry_after += 1
            return None
        return answer.json()

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        answer = self.call(method, path, body, **kw)
        if not answer.ok:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
        return answer.json()

    @classmethod
    def register(cls, base: str) -> User:
        user = cls(base)
        email = f"chaos-{uuid.uuid4().hex[:10]}@valorize.dev"
        body = {"email": email, "password": PASSWORD, "name": "Chaos", "preferred_currency": "BRL"}
        user.token = user.ok("POST", "/api/auth/register", body)["token"]
        return user

    def id(self) -> str:
        return str(self.ok("GET", "/api/auth/me")["id"])


class TaskLog:
    """The tasks emulator's deliveries since this object was made, from the per-queue counts
    its dispatcher writes (TasksEmulator.stats_path, rewritten every 0.2 s)."""

    def __init__(self, stack: Stack) -> None:
        emulator = stack.process("tasks")
        assert isinstance(emulator, TasksEmulator)
        self.path = emulator.stats_path
        self.start = self._totals()

    def _totals(self) -> collections.Counter[str]:
        totals: collections.Counter[str] = collections.Counter()
        if not self.path.exists():
            return totals
        for queue in json.loads(self.path.read_text())["queues"].values():
            totals.update({k: queue[k] for k in ("attempts", "failed", "given_up")})
        return totals

    def counts(self) -> dict[str, int]:
        time.sleep(0.5)  # the dispatcher's last rewrite included
        now = self._totals()
        return {
            "task_attempts": now["attempts"] - self.start["attempts"],
            "task_attempts_failed": now["failed"] - self.start["failed"],
            "tasks_given_up": now["given_up"] - self.start["given_up"],
        }


@cache
def services(firestore_host: str) -> Any:
    """The application's own adapters on the stack's emulators (for the ledger and the
    integrity check), built once."""
    os.environ["FIRESTORE_EMULATOR_HOST"] = firestore_host
    from valorize import bootstrap

    return bootstrap.build()


def kill(process: ManagedProcess) -> None:
    """SIGKILL the process's whole group (no shutdown: requests in flight die mid-work, as
    when a Cloud Run instance crashes or is preempted) and wait until it is gone."""
    assert process.proc is not None, f"{process.name} is not running"
    os.killpg(process.proc.pid, signal.SIGKILL)
    process.proc.wait()
    process.proc = None


def restart(process: ManagedProcess) -> float:
    """Start a killed process again; the seconds until it answers its readiness probe."""
    began = time.monotonic()
    process.start()
    process.wait_ready(90)
    return round(time.monotonic() - began, 2)


def until(what: str, probe: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    """Poll `probe` until it returns something truthy; that value."""
    end = time.monotonic() + deadline
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not within {deadline:.0f} s")
        time.sleep(POLL)


def kill_mid_way(
    stack: Stack,
    name: str,
    progress: Callable[[], dict[str, int] | None],
    past: float = KILL_PAST,
) -> dict[str, Any]:
    """Wait until `progress()` says the work is under way, {"done": d, "total": t, ...} with
    `past` * t <= d < t (d: what is written so far, counted in Firestore), then SIGKILL the
    service `name` and start it again. Returns where the kill landed: the progress seen just
    before it and just after it (nothing more can be written after the kill)."""

    def mid_way() -> dict[str, int] | None:
        seen = progress()
        return (
            seen
            if seen and 0 < seen["done"] < seen["total"] and seen["done"] >= past * seen["total"]
            else None
        )

    before = until(f"{name} mid-way", mid_way)
    process = stack.process(name)
    kill(process)
    killed_at = time.monotonic()
    after = progress() or before
    return {
        "progress_at_kill": after["done"],
        "total": after["total"],
        "mid_way": 0 < after["done"] < after["total"],
        "seen_before_kill": before,
        "seen_after_kill": after,
        "restart_seconds": restart(process),
        "killed_at": killed_at,
    }


def count(db: Any, *path: str) -> int:
    """Documents in a collection (Firestore's count aggregation)."""
    ref = db
    for i, part in enumerate(path):
        ref = ref.collection(part) if i % 2 == 0 else ref.document(part)
    return int(ref.count().get()[0][0].value)


def ledger(stack: Stack, uid: str) -> list[Any]:
    from valorize.service.ports.ledger import TransactionFilter
    from valorize.service.ports.pages import walk

    app = services(stack.env["FIRESTORE_EMULATOR_HOST"])
    return list(walk(lambda c: app.ledger.list_transactions(uid, TransactionFilter(), 500, c)))


def integrity(stack: Stack, uid: str) -> dict[str, Any]:
    report = services(stack.env["FIRESTORE_EMULATOR_HOST"]).integrity.check(uid)
    return {"drift": len(report.drift), "drift_examples": [str(d) for d in report.drift[:5]]}


def client_errors(user: User) -> dict[str, Any]:
    return {
        "client_errors": dict(sorted((str(k), v) for k, v in user.errors.items())),
        "503_without_retry_after": user.no_retry_after,
    }


# --- ingest ---------------------------------------------------------------------------------


def ingest(stack: Stack, lines: int) -> dict[str, Any]:
    assert stack.urls.base_url
    user = User.register(stack.urls.base_url)
    uid = user.id()
    db = services(stack.env["FIRESTORE_EMULATOR_HOST"]).firestore
    data = ofx_sample(lines, seed=12)
    lines_read = [
        e
        for e in parse_statement(io.BytesIO(data), "ofx", currency="BRL")
        if isinstance(e, StatementLine)
    ]
    fitids = {line.fitid for line in lines_read}
    assert len(fitids) == len(lines_read), "the sample repeats a FITID"
    tasks = TaskLog(stack)
    began = time.monotonic()
    accepted = user.ok(
        "POST",
        "/api/imports",
        files={"file": ("statement.ofx", io.BytesIO(data), "application/x-ofx")},
    )
    path = f"/api/imports/{accepted['id']}"

    last: dict[str, Any] = {"status": "unknown"}

    def record() -> dict[str, Any]:
        """The import as last seen (while the function is down, as before it went)."""
        last.update(user.poll(path) or {})
        return dict(last)

    def staging() -> dict[str, int] | None:
        r = record()
        if r["status"] != "processing" or not r["progress"]["total"]:
            return None
        rows = count(db, "users", uid, "imports", accepted["id"], "rows")
        # Staged rows, beside the worker's own progress (saved every 2 s).
        return {"done": rows, "total": r["progress"]["total"], **r["progress"]}

    staged = kill_mid_way(stack, "function-ingest", staging)
    ready = until("import ready", lambda: (r := record())["status"] not in WORKING and r)
    staged["recovered_after"] = round(time.monotonic() - staged.pop("killed_at"), 2)
    staged["status_after"] = ready["status"]
    staging_seconds = round(time.monotonic() - began, 2)
    if ready["status"] != "ready":
        raise RuntimeError(f"the import did not become ready: {ready}")

    commit_began = time.monotonic()
    user.ok("POST", path + "/commit", headers={"Idempotency-Key": uuid.uuid4().hex})

    def committing() -> dict[str, int] | None:
        r = record()
        if r["status"] != "committing":
            return None
        written = count(db, "users", uid, "transactions")
        # Killed after a settled chunk, with transactions written that no settled chunk
        # counts yet: the hardest point to resume from (the run must go on after the settled
        # chunk and count the unsettled transactions once, not write them again).
        if not 0 < r["committed"] < written:
            return None
        return {"done": written, "total": r["counts"]["new"], "settled": r["committed"]}

    committed = kill_mid_way(stack, "function-ingest", committing, past=0)
    final = until("import committed", lambda: (r := record())["status"] not in WORKING and r)
    committed["recovered_after"] = round(time.monotonic() - committed.pop("killed_at"), 2)
    committed["status_after"] = final["status"]
    commit_seconds = round(time.monotonic() - commit_began, 2)

    txns = ledger(stack, uid)
    by_fitid = collections.Counter(t.fitid for t in txns)
    accounts = user.ok("GET", "/api/accounts")["data"]
    balances = sum(a["balance"]["amount"] for a in accounts)
    return {
        "scenario": "ingest",
        "lines": lines,
        "bytes": len(data),
        "kills": [
            {"during": "staging", **staged},
            {"during": "commit", **committed},
        ],
        "staging_seconds": staging_seconds,
        "commit_seconds": commit_seconds,
        "import_status": final["status"],
        "import_rows_new": final["counts"]["new"],
        "import_committed": final["committed"],
        "transactions": len(txns),
        "lost": len(fitids - set(by_fitid)),
        "duplicated": sum(n - 1 for n in by_fitid.values()) + len(set(by_fitid) - fitids),
        "accounts_created": len(accounts),
        "balance": balances,
        "balance_expected": sum(line.amount for line in lines_read),
        **client_errors(user),
        **tasks.counts(),
        **integrity(stack, uid),
    }


# --- automate -------------------------------------------------------------------------------


def automate(stack: Stack, recurrences: int, days: int) -> dict[str, Any]:
    assert stack.urls.base_url
    user = User.register(stack.urls.base_url)
    uid = user.id()
    account = user.ok(
        "POST", "/api/accounts", {"name": "Chaos", "type": "checking", "currency": "BRL"}
    )
    categories = user.ok("GET", "/api/categories?limit=200")["data"]
    category = next(c for c in categories if c["type"] == "expense")
    renamed = "Chaos rent (by the rule)"
    user.ok(
        "POST",
        "/api/rules",
        {
            "name": "Chaos rent",
            "conditions": [{"field": "description", "op": "contains", "value": "chaos rent"}],
            "actions": [
                {"action": "set_category", "value": category["id"]},
                {"action": "rename_description", "value": renamed},
            ],
        },
    )
    run_day = dt.date(2025, 3, 31)
    start = run_day - dt.timedelta(days=days - 1)
    amount = -100
    made = [
        user.ok(
            "POST",
            "/api/recurrences",
            {
                "account_id": account["id"],
                "amount": amount,
                "description": f"Chaos rent {i}",
                "schedule": {"frequency": "daily"},
                "start": start.isoformat(),
            },
        )["id"]
        for i in range(recurrences)
    ]
    expected = {
        f"rec-{rid}-{start + dt.timedelta(days=d):%Y%m%d}" for rid in made for d in range(days)
    }
    db = services(stack.env["FIRESTORE_EMULATOR_HOST"]).firestore
    tasks = TaskLog(stack)
    began = time.monotonic()
    answer = requests.post(
        stack.urls.functions["automate"] + "/api/automations/run",
        json={"kind": "daily", "date": run_day.isoformat()},
        headers={"X-Valorize-Internal": stack.secret},
        timeout=TIMEOUT,
    )
    answer.raise_for_status()

    def created() -> int:
        found = user.poll(f"/api/accounts/{account['id']}")
        return 0 if found is None else int(found["balance"]["amount"]) // amount

    def materializing() -> dict[str, int]:
        written = count(db, "users", uid, "transactions")
        return {"done": written, "total": len(expected), "by_the_balance": created()}

    killed = kill_mid_way(stack, "function-automate", materializing)
    run = f"daily-{run_day.isoformat()}"

    def finished() -> bool:
        snap = db.document(f"users/{uid}/automation_runs/{run}").get()
        return snap.exists and created() >= len(expected)

    until("the user's run recorded", finished)
    killed["recovered_after"] = round(time.monotonic() - killed.pop("killed_at"), 2)
    run_seconds = round(time.monotonic() - began, 2)

    txns = ledger(stack, uid)
    ids = collections.Counter(t.id for t in txns)
    balance = user.ok("GET", f"/api/accounts/{account['id']}")["balance"]["amount"]
    ruled = [t for t in txns if t.category_id == category["id"] and t.description == renamed]
    return {
        "scenario": "automate",
        "recurrences": recurrences,
        "occurrences_expected": len(expected),
        "kills": [{"during": "recurrence run", **killed}],
        "run_seconds": run_seconds,
        "transactions": len(txns),
        "lost": len(expected - set(ids)),
        "duplicated": sum(n - 1 for n in ids.values()) + len(set(ids) - expected),
        "rule_applied": len(ruled),
        "balance": balance,
        "balance_expected": amount * len(expected),
        **client_errors(user),
        **tasks.counts(),
        **integrity(stack, uid),
    }
