"""A task's live events are part of its effect (service/task_pushes.py): with Redis down the
task fails retryably after its durable effects committed, once; its retry pushes each event
once, and a further redelivery pushes nothing. Each task kind that publishes through the bus
or the import stages, through its function's real routes on fakes; and the request path stays
best effort.

Before: each of these tasks answered 200 with its events skipped for good (the best-effort
publisher swallowed the outage), and the retry had nothing to push."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flask
import pytest

from load.samples import csv_sample
from tests import fakes
from tests.fakes.notifications import FakePublisher
from tests.fakes.tasks import RecordingQueue, Task
from tests.unit.conftest import USER, World, monthly_rent
from valorize.config import INTERNAL_HEADER, Settings
from valorize.domain.errors import Unavailable
from valorize.domain.imports import ImportStatus
from valorize.domain.model import ApiToken, Origin, User
from valorize.entrypoints.http import FunctionApp
from valorize.service import task_pushes
from valorize.service.imports import Upload
from valorize.service.imports.ledger_runs import COMMIT_PATH
from valorize.service.imports.upload import PROCESS_PATH
from valorize.service.ports import TransactionFilter
from valorize.service.requests.rules import ApplyRules, CreateRule
from valorize.service.task_pushes import PENDING_PREFIX, TaskPushes, push_key

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret"
NOW = datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
FLASK = flask.Flask(__name__)


def function_app(name: str, services: Any) -> FunctionApp:
    """The function's routes (its main.py) over `services`."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_main_pushes", ROOT / f"functions/{name}/main.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return FunctionApp(name, module.app.routes, services)


@dataclass
class Worker:
    """One function's task routes over fakes, delivering tasks as Cloud Tasks does."""

    world: World
    app: FunctionApp
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def realtime(self) -> FakePublisher:
        publisher: FakePublisher = self.world.services.realtime  # type: ignore[assignment]
        return publisher

    @property
    def queue(self) -> RecordingQueue:
        queue: RecordingQueue = self.world.services.task_queue  # type: ignore[assignment]
        return queue

    def deliver(self, task: Task) -> flask.Response:
        """One delivery, numbered as Cloud Tasks numbers a task's attempts."""
        name = task.name or task.path
        retries = self.attempts.get(name, 0)
        self.attempts[name] = retries + 1
        with FLASK.test_request_context(
            task.path,
            method="POST",
            data=json.dumps(task.payload),
            content_type="application/json",
            headers={
                INTERNAL_HEADER: SECRET,
                "X-CloudTasks-TaskRetryCount": str(retries),
                "X-CloudTasks-TaskName": task.name or "",
            },
        ):
            return self.app(flask.request)

    def pushed(self, *, progress: bool = False) -> list[str]:
        """The names of the events pushed since the last look."""
        names = [e for _, e, _ in self.realtime.events if progress or e != "import.progress"]
        self.realtime.events.clear()
        return names


def worker(function: str) -> Worker:
    services = fakes.build(Settings(internal_secret=SECRET))
    services.clock.set(NOW)  # type: ignore[attr-defined]
    services.user_store.create_user(
        User(USER, "ana@example.com", "Ana", "BRL", "pt-BR", NOW),
        "hash",
        [],
        ApiToken("t" * 32, USER, "default", NOW),
        "secret-hash",
    )
    return Worker(World(services), function_app(function, services))


def outage_then_retries(w: Worker, task: Task, durable: Any) -> list[str]:
    """Deliver `task` with Redis down (503, its effects done once, nothing pushed), then
    with Redis back (pushed), then again (nothing more); what the retry pushed."""
    w.pushed(progress=True)
    w.realtime.up = False
    failed = w.deliver(task)
    assert failed.status_code == 503, failed.get_data(as_text=True)
    assert failed.headers["Retry-After"]
    done = durable()
    assert w.pushed() == []
    w.realtime.up = True
    retried = w.deliver(task)
    assert retried.status_code == 200, retried.get_data(as_text=True)
    assert durable() == done  # the retry did not redo the effects
    pushed = w.pushed()
    again = w.deliver(task)
    assert again.status_code == 200
    assert w.pushed() == [] and durable() == done
    # Nothing is left waiting for another delivery.
    records = w.world.memory.space(USER).idempotency
    assert not [k for k in records if k.startswith(PENDING_PREFIX)]
    return pushed


# --- each task kind ---------------------------------------------------------------------------


def test_an_automation_run_pushes_what_it_created_on_its_retry() -> None:
    w = worker("automate")
    account = w.world.account(opening=500_000)
    w.world.recurrences.create(USER, monthly_rent(account.id))
    task = Task(
        "automations",
        "automate",
        "/api/automations/user",
        {"kind": "daily", "date": "2024-01-31", "user_id": USER},
        f"auto-daily-2024-01-31-{USER}",
    )

    def durable() -> tuple[list[str], int]:
        txns = w.world.memory.space(USER).transactions.values()
        made = sorted(t.id for t in txns if t.origin is Origin.RECURRENCE)
        return made, w.world.balance(account.id)

    pushed = outage_then_retries(w, task, durable)
    assert durable() == (durable()[0], 350_000) and len(durable()[0]) == 1
    assert sorted(pushed) == ["account.balance", "dashboard.changed", "transaction.created"]


def test_a_rules_page_pushes_the_transactions_it_changed_on_its_retry() -> None:
    w = worker("rules")
    account = w.world.account()
    food = w.world.category()
    ids = [w.world.txn(account.id, -1000 * n, description=f"Uber {n}").id for n in (1, 2)]
    rule = {
        "name": "Uber",
        "conditions": [{"field": "description", "op": "contains", "value": "uber"}],
        "actions": [{"action": "set_category", "value": food.id}],
    }
    w.world.rules.create(USER, CreateRule.model_validate_json(json.dumps(rule)))
    w.world.rules.start_apply(USER, ApplyRules())
    [task] = w.queue.take("/api/rules/apply/run")

    def durable() -> list[tuple[str | None, datetime]]:
        found = [w.world.ledger.get_transaction(USER, i) for i in ids]
        return [(t.category_id, t.updated_at) for t in found]

    pushed = outage_then_retries(w, task, durable)
    assert [c for c, _ in durable()] == [food.id, food.id]
    assert sorted(pushed) == ["dashboard.changed"] * 2 + ["transaction.updated"] * 2


def upload(w: Worker, lines: int) -> str:
    service = w.world.services.imports
    with service.receive(USER, None) as intake:
        intake.write(csv_sample(lines, layout="generic", seed=1))
        record, _ = service.upload(USER, Upload("statement.csv", preset="generic"), intake)
    return record.id


def test_an_import_is_staged_once_and_its_ready_event_pushed_on_the_retry() -> None:
    w = worker("ingest")
    import_id = upload(w, 12)
    [task] = w.queue.take(PROCESS_PATH)

    def durable() -> tuple[ImportStatus, int]:
        record = w.world.imports.get(USER, import_id)
        return record.status, record.attempts

    pushed = outage_then_retries(w, task, durable)
    assert durable() == (ImportStatus.READY, 1)
    # Progress ticks are superseded: best effort, never kept for a retry. The state events
    # (and the account a statement created) are sure.
    assert pushed == [
        "dashboard.changed",
        "account.updated",
        "account.balance",
        "import.ready",
    ]


def test_a_commit_task_creates_once_and_pushes_committed_on_the_retry() -> None:
    w = worker("ingest")
    w.world.imports.inline_rows = 0
    import_id = upload(w, 12)
    w.deliver(w.queue.take(PROCESS_PATH)[0])
    _, queued = w.world.imports.commit(USER, import_id)
    assert queued
    [task] = w.queue.take(COMMIT_PATH)

    def durable() -> tuple[ImportStatus, int]:
        flt = TransactionFilter(import_id=import_id)
        txns = w.world.ledger.list_transactions(USER, flt, 500, None).items
        return w.world.imports.get(USER, import_id).status, len(txns)

    pushed = outage_then_retries(w, task, durable)
    assert durable() == (ImportStatus.COMMITTED, 12)
    assert pushed == ["account.balance", "dashboard.changed", "import.committed"]


def test_an_account_deletion_pushes_deleted_on_the_retry() -> None:
    w = worker("accounts")
    w.world.services.accounts.delete_page = 2
    account = w.world.account()
    for n in range(3):
        w.world.txn(account.id, -100 - n)
    w.world.accounts.delete(USER, account.id, True)
    w.pushed(progress=True)
    w.realtime.up = False
    failed: list[Task] = []
    while tasks := w.queue.take():
        for task in tasks:
            if w.deliver(task).status_code == 503:
                failed.append(task)
    assert failed and w.world.account_store.get_account(USER, account.id) is None
    assert [e for e in w.pushed(progress=True) if e != "account.deleting"] == []
    w.realtime.up = True
    # Cloud Tasks retries what failed: each retry pushes what its first delivery left.
    for task in failed:
        assert w.deliver(task).status_code == 200
    assert w.pushed().count("account.deleted") == 1
    for task in failed:
        assert w.deliver(task).status_code == 200
    assert w.pushed() == []


def test_a_request_stays_best_effort() -> None:
    w = worker("transactions")
    account = w.world.account()
    w.pushed()
    w.realtime.up = False
    w.world.txn(account.id, -500)  # no task around it: nothing raised, nothing kept
    assert w.pushed() == []
    assert not w.world.memory.space(USER).idempotency


# --- the mechanism ----------------------------------------------------------------------------


@dataclass
class Flaky:
    """A LivePublisher whose sure pushes fail after `room` more of them."""

    room: int = 10**6
    sent: list[tuple[str, Mapping[str, object]]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)

    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None:
        self.sent.append((event, data))
        return len(self.sent)

    def publish_once(
        self, user_id: str, event: str, data: Mapping[str, object], key: str
    ) -> int | None:
        if self.room <= 0:
            raise Unavailable("down")
        self.room -= 1
        if key in self.keys:
            return None
        self.keys.add(key)
        return self.publish(user_id, event, data)


def pushes(publisher: Flaky) -> tuple[TaskPushes, Any]:
    services = fakes.build()
    return TaskPushes(publisher, services.idempotency_store, services.clock), services


def test_a_balance_that_comes_back_within_a_task_is_pushed_each_time() -> None:
    flaky = Flaky()
    sure, _ = pushes(flaky)
    with sure.delivery("t1", USER, redelivered=False):
        for amount in (100, 50, 100):
            sure.publish(USER, "account.balance", {"account_id": "a", "balance": amount})
        assert flaky.sent == []  # collected while the handler runs
    assert [d["balance"] for _, d in flaky.sent] == [100, 50, 100]
    # Keys: the same event of another task is another change; of this task, the same one.
    data = {"account_id": "a", "balance": 100}
    assert push_key("t1", "account.balance", data, 0) != push_key("t2", "account.balance", data, 0)
    assert push_key("t1", "account.balance", data, 0) != push_key("t1", "account.balance", data, 1)


def test_a_push_that_fails_mid_way_keeps_only_the_rest_for_the_retry() -> None:
    flaky = Flaky(room=1)
    sure, _ = pushes(flaky)

    def handler() -> None:
        for n in range(3):
            sure.publish(USER, "transaction.created", {"id": f"t{n}", "months": [["x"]]})

    with pytest.raises(Unavailable), sure.delivery("t1", USER, redelivered=False):
        handler()
    assert [d["id"] for _, d in flaky.sent] == ["t0"]
    flaky.room = 10
    with sure.delivery("t1", USER, redelivered=True):
        pass  # the retry's handler finds its work done
    assert [d["id"] for _, d in flaky.sent] == ["t0", "t1", "t2"]
    assert flaky.sent[1][1] == {"id": "t1", "months": [["x"]]}


def test_a_handler_that_fails_after_committing_keeps_its_pushes_and_its_error() -> None:
    flaky = Flaky(room=0)
    sure, _ = pushes(flaky)
    with pytest.raises(ZeroDivisionError), sure.delivery("t1", USER, redelivered=False):
        sure.publish(USER, "transaction.created", {"id": "t0"})
        raise ZeroDivisionError
    flaky.room = 10
    with sure.delivery("t1", USER, redelivered=True):
        pass
    assert flaky.sent == [("transaction.created", {"id": "t0"})]


def test_progress_ticks_are_best_effort_even_in_a_task() -> None:
    flaky = Flaky(room=0)
    sure, services = pushes(flaky)
    with sure.delivery("t1", USER, redelivered=False):
        sure.publish(USER, "import.progress", {"id": "i", "processed": 1, "total": 2})
    assert flaky.sent == [("import.progress", {"id": "i", "processed": 1, "total": 2})]
    assert not services.ledger.memory.space(USER).idempotency


def test_only_a_delivery_numbered_first_skips_looking_for_what_an_earlier_one_left() -> None:
    """A delivery Cloud Tasks numbers 0 cannot follow one (no read); any other reads."""
    flaky = Flaky(room=0)
    sure, _ = pushes(flaky)
    with pytest.raises(Unavailable), sure.delivery("t1", USER, redelivered=False):
        sure.publish(USER, "budget.changed", {"month": "2024-01"})
    flaky.room = 10
    with sure.delivery("t1", USER, redelivered=False):
        pass
    assert flaky.sent == []  # told it is the first: not read (Cloud Tasks numbers them)
    with sure.delivery("t1", USER, redelivered=True):
        pass
    assert flaky.sent == [("budget.changed", {"month": "2024-01"})]


def test_a_backlog_too_big_for_one_record_is_kept_in_several(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_pushes, "PART_CHARS", 200)
    flaky = Flaky(room=0)
    sure, services = pushes(flaky)
    sent = [("transaction.created", {"id": f"t{n}", "note": "x" * 50}) for n in range(9)]
    with pytest.raises(Unavailable), sure.delivery("t1", USER, redelivered=False):
        for event, data in sent:
            sure.publish(USER, event, data)
    records = services.ledger.memory.space(USER).idempotency
    assert len(records) == 9  # one event per record at this size
    # A retry that gets a few out keeps the rest in fewer records, and no stale one.
    flaky.room = 6
    with pytest.raises(Unavailable), sure.delivery("t1", USER, redelivered=True):
        pass
    assert len(records) == 3
    flaky.room = 10
    with sure.delivery("t1", USER, redelivered=True):
        pass
    assert flaky.sent == sent and not records
