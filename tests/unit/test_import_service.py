"""The import service's main paths on the fakes (tests/fakes/imports.py), in milliseconds:
upload, staging, review, commit and revert (inline and as a task), and runs interrupted
anywhere resuming to the exact result. tests/e2e/test_imports.py runs the same paths through
HTTP on the emulators, with real files and sizes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from load.samples import csv_sample
from tests.contracts.test_ledger import consistent
from tests.fakes.imports import InMemoryImports
from tests.fakes.memory import Memory
from tests.fakes.tasks import Task
from tests.unit.conftest import USER, World, make_world
from valorize.domain.errors import Conflict, NotFound, ValidationFailed
from valorize.domain.imports import Classification, Import, ImportStatus, StagedRow
from valorize.domain.model import ApiToken, Origin, Transaction, User
from valorize.domain.notifications import NotificationKind
from valorize.service.imports import Upload
from valorize.service.imports.ledger_runs import COMMIT_PATH, REVERT_PATH
from valorize.service.imports.upload import PROCESS_PATH
from valorize.service.ports import TransactionFilter
from valorize.service.requests import UpdateTransaction
from valorize.service.requests.imports import UpdateImportRow

S = ImportStatus
NOW = datetime(2024, 1, 1, tzinfo=UTC)
LINES = 40


class Interrupted(Exception):
    """The run "dies" here."""


class Dying(InMemoryImports):
    """The fake repository, dying at the `calls`-th call of `at` once armed ("settle": the
    chunk is written, not settled; "write_commit" / "write_revert": only the first
    `after_rows` rows of the chunk are written; "add": a staged row, mid-file)."""

    def __init__(self, memory: Memory) -> None:
        super().__init__(memory)
        self.at: str | None = None
        self.calls = 0
        self.after_rows: int | None = None
        self.seen: dict[str, int] = defaultdict(int)

    def arm(self, at: str, calls: int, after_rows: int | None = None) -> None:
        self.at, self.calls, self.after_rows = at, calls, after_rows
        self.seen.clear()

    def _dies(self, name: str) -> bool:
        self.seen[name] += 1
        if self.at == name and self.seen[name] == self.calls:
            self.at = None
            return True
        return False

    def settle(self, *args: Any, **kwargs: Any) -> Import | None:
        if self._dies("settle"):
            raise Interrupted()
        return super().settle(*args, **kwargs)

    def write_commit(self, user_id: str, import_id: str, created: Any, skipped: Any) -> None:
        if self._dies("write_commit"):
            super().write_commit(user_id, import_id, created[: self.after_rows], ())
            raise Interrupted()
        super().write_commit(user_id, import_id, created, skipped)

    def write_revert(self, user_id: str, import_id: str, rows: Any) -> list[Transaction]:
        if self._dies("write_revert"):
            super().write_revert(user_id, import_id, rows[: self.after_rows])
            raise Interrupted()
        return super().write_revert(user_id, import_id, rows)

    def row_writer(self, user_id: str, import_id: str) -> Any:
        writer = super().row_writer(user_id, import_id)
        writer.batch_size = 10
        original = writer.add

        def add(row: StagedRow) -> None:
            if self._dies("add"):
                raise Interrupted()
            original(row)

        writer.add = add  # type: ignore[method-assign]
        return writer


@pytest.fixture
def repo() -> Dying:
    return Dying(Memory())


@pytest.fixture
def world(repo: Dying) -> World:
    built = make_world()
    repo.memory = built.memory  # the same database as the other fakes
    built.services.import_store = repo
    built.user_store.create_user(
        User(USER, "ana@example.com", "Ana", "BRL", "pt-BR", NOW),
        "hash",
        [],
        ApiToken("t" * 32, USER, "default", NOW),
        "secret-hash",
    )
    return built


def upload(world: World, data: bytes, key: str | None = None, **form: Any) -> tuple[Import, bool]:
    service = world.services.imports
    with service.receive(USER, key) as intake:
        intake.write(data)
        return service.upload(USER, Upload("statement.csv", preset="generic", **form), intake)


def run(world: World, task: Task) -> Import | None:
    """What the ingest function's task targets do with a delivery."""
    args: tuple[str, str] = (task.payload["user_id"], task.payload["import_id"])
    service = world.services.imports
    if task.path == PROCESS_PATH:
        return service.process(*args)
    if task.path == COMMIT_PATH:
        return service.run_commit(*args)
    assert task.path == REVERT_PATH
    return service.run_revert(*args)


def staged(world: World, data: bytes, **form: Any) -> Import:
    upload(world, data, **form)
    [task] = world.task_queue.take(PROCESS_PATH)
    done = run(world, task)
    assert done is not None and done.status is S.READY, done
    return done


def imported(world: World, import_id: str) -> list[Transaction]:
    flt = TransactionFilter(import_id=import_id)
    return world.services.ledger.list_transactions(USER, flt, 500, None).items


def rows(world: World, import_id: str) -> list[StagedRow]:
    return world.services.imports.rows(USER, import_id, None, 500, None).items


def events(world: World, name: str) -> list[dict[str, Any]]:
    return [data for _, event, data in world.realtime.events if event == name]


def data(lines: int = LINES, seed: int = 1) -> bytes:
    return csv_sample(lines, layout="generic", seed=seed)


# --- upload and staging -----------------------------------------------------------------------


def test_an_upload_is_stored_queued_once_and_staged_by_its_task(world: World) -> None:
    account = world.account()
    record, replay = upload(world, data(), account_id=account.id)
    assert not replay and record.status is S.UPLOADED
    assert world.statement_files.objects[record.object_name] == data()
    [task] = world.task_queue.tasks
    assert (task.path, task.name) == (PROCESS_PATH, f"import-{record.id}")

    ready = run(world, world.task_queue.take()[0])
    assert ready is not None and ready.status is S.READY
    assert ready.counts.new == LINES and ready.total == ready.processed == LINES
    assert ready.account_ids == (account.id,)
    assert [r.id for r in rows(world, record.id)] == sorted(r.id for r in rows(world, record.id))
    assert all(r.include and r.account_id == account.id for r in rows(world, record.id))
    assert events(world, "import.ready")[0]["counts"]["new"] == LINES
    assert events(world, "import.progress")[-1] == {
        "id": record.id,
        "processed": LINES,
        "total": LINES,
    }
    [note] = world.notifier.sent
    assert note.kind is NotificationKind.IMPORT_FINISHED
    # Nothing reaches the ledger before a commit.
    assert imported(world, record.id) == [] and world.balance(account.id) == 0

    # A redelivered task leaves the import alone.
    again = run(world, Task("imports", "ingest", PROCESS_PATH, task.payload, task.name))
    assert again == world.imports.get(USER, record.id) == ready


def test_an_idempotency_key_returns_the_first_upload(world: World) -> None:
    first, replay = upload(world, data(), key="k1")
    assert not replay
    again, replay = upload(world, data(), key="k1")
    assert replay and again == first
    assert len(world.task_queue.tasks) == 1
    with pytest.raises(ValidationFailed):
        upload(world, data(seed=2), key="k1")  # the same key, another file


def test_lines_already_in_the_ledger_stage_as_duplicates(world: World) -> None:
    account = world.account()
    first = staged(world, data(), account_id=account.id)
    world.imports.commit(USER, first.id)
    again = staged(world, data(), account_id=account.id)
    assert again.counts.duplicate == LINES and again.counts.new == 0
    assert not any(r.include for r in rows(world, again.id))


def test_an_account_is_created_for_a_statement_without_one(world: World) -> None:
    ready = staged(world, data())
    [account_id] = ready.account_ids
    assert world.account_store.get_account(USER, account_id) is not None
    assert ready.statements[0].account_created
    # Staged again (a redelivery after a crash would), the same account is found.
    assert staged(world, data(seed=3)).account_ids == (account_id,)


def test_an_account_an_import_would_create_counts_against_the_ceiling(world: World) -> None:
    world.services.imports.max_accounts = 2
    world.account(name="a")
    world.account(name="b")
    record, _ = upload(world, data())
    failed = run(world, world.task_queue.take(PROCESS_PATH)[0])
    assert failed is not None and failed.status is S.FAILED
    assert failed.reason is not None and "at most 2 accounts" in failed.reason
    assert len(world.services.accounts.list(USER, 10, None).items) == 2
    assert rows(world, record.id) == []
    # Into an account the user already has, the same statement imports.
    held = world.services.accounts.list(USER, 10, None).items[0]
    assert staged(world, data(seed=2), account_id=held.id).account_ids == (held.id,)


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (b"Date,Description,Amount\n", "no transactions"),
        (b"Date,Description,Amount\nnot a date,y,1.00\n", "unknown format"),
    ],
)
def test_a_file_without_readable_lines_fails_with_a_reason(
    world: World, blob: bytes, words: str
) -> None:
    record, _ = upload(world, blob)
    failed = run(world, world.task_queue.take()[0])
    assert failed is not None and failed.status is S.FAILED
    assert failed.reason is not None and words in failed.reason
    assert rows(world, record.id) == []
    assert [n.kind for n in world.notifier.sent] == [NotificationKind.IMPORT_FAILED]


def test_a_file_gone_from_storage_fails_the_import(world: World) -> None:
    record, _ = upload(world, data())
    world.statement_files.delete(record.object_name)
    failed = run(world, world.task_queue.take()[0])
    assert failed is not None and failed.status is S.FAILED
    assert failed.reason is not None and "no longer stored" in failed.reason


def test_a_crash_mid_staging_then_redelivery_stages_the_same_rows(
    world: World, repo: Dying
) -> None:
    account = world.account()
    record, _ = upload(world, data(), account_id=account.id)
    [task] = world.task_queue.take()
    repo.arm("add", 25)
    with pytest.raises(Interrupted):
        run(world, task)
    half = world.imports.get(USER, record.id)
    assert half.status is S.PROCESSING
    assert 0 < len(rows(world, record.id)) < LINES
    resumed = run(world, task)
    assert resumed is not None and resumed.status is S.READY and resumed.attempts == 2
    clean = staged(world, data(), account_id=account.id)
    assert [(r.id, r.amount, r.classification) for r in rows(world, clean.id)] == [
        (r.id, r.amount, r.classification) for r in rows(world, record.id)
    ]


# --- review -----------------------------------------------------------------------------------


def test_a_row_left_out_at_review_is_not_committed(world: World) -> None:
    account = world.account()
    ready = staged(world, data(), account_id=account.id)
    out = rows(world, ready.id)[0]
    changed = world.imports.update_row(USER, ready.id, out.id, UpdateImportRow(include=False))
    assert not changed.include
    done, queued = world.imports.commit(USER, ready.id)
    assert not queued and done.committed == LINES - 1
    committed = {r.transaction_id for r in rows(world, ready.id) if r.committed}
    assert {t.id for t in imported(world, ready.id)} == committed and len(committed) == LINES - 1
    assert out.id not in {r.id for r in rows(world, ready.id) if r.committed}
    with pytest.raises(Conflict):  # the review is closed once committing starts
        world.imports.update_row(USER, ready.id, out.id, UpdateImportRow(include=True))
    with pytest.raises(NotFound):
        world.imports.update_row(USER, ready.id, "999-9999999", UpdateImportRow(include=True))


# --- commit and revert ------------------------------------------------------------------------


def test_a_commit_moves_balances_once_and_a_revert_takes_exactly_it_back(world: World) -> None:
    account = world.account(opening=5_000)
    world.txn(account.id, -700)  # the owner's, not the import's: stays
    ready = staged(world, data(), account_id=account.id)
    total = sum(r.amount or 0 for r in rows(world, ready.id))

    done, queued = world.imports.commit(USER, ready.id)
    assert not queued and done.status is S.COMMITTED and done.committed == LINES
    txns = imported(world, ready.id)
    assert len(txns) == LINES and {t.origin for t in txns} == {Origin.IMPORT}
    assert world.balance(account.id) == 5_000 - 700 + total
    assert all(r.committed and r.transaction_id for r in rows(world, ready.id))
    consistent(world.services, USER)
    assert events(world, "import.committed")[0]["transactions"] == LINES
    # Asked again: nothing moves.
    assert world.imports.commit(USER, ready.id) == (world.imports.get(USER, ready.id), False)
    assert world.balance(account.id) == 5_000 - 700 + total

    undone, queued = world.imports.revert(USER, ready.id)
    assert not queued and undone.status is S.REVERTED and undone.reverted == LINES
    assert imported(world, ready.id) == []
    assert world.balance(account.id) == 5_000 - 700
    consistent(world.services, USER)
    assert world.imports.revert(USER, ready.id) == (world.imports.get(USER, ready.id), False)
    with pytest.raises(Conflict):
        world.imports.commit(USER, ready.id)


def test_commit_before_ready_and_revert_before_commit_are_conflicts(world: World) -> None:
    record, _ = upload(world, data())
    with pytest.raises(Conflict):
        world.imports.commit(USER, record.id)
    ready = run(world, world.task_queue.take()[0])
    assert ready is not None
    with pytest.raises(Conflict):
        world.imports.revert(USER, ready.id)
    with pytest.raises(NotFound):
        world.imports.commit(USER, "0" * 32)


def test_a_big_commit_and_revert_run_as_tasks(world: World) -> None:
    account = world.account()
    ready = staged(world, data(), account_id=account.id)
    world.imports.inline_rows = 10
    committing, queued = world.imports.commit(USER, ready.id)
    assert queued and committing.status is S.COMMITTING and imported(world, ready.id) == []
    [task] = world.task_queue.take()
    assert task.name == f"import-commit-{ready.id}-1"
    committed = run(world, task)
    assert committed is not None and committed.status is S.COMMITTED
    assert len(imported(world, ready.id)) == LINES
    reverting, queued = world.imports.revert(USER, ready.id)
    assert queued and reverting.status is S.REVERTING
    reverted = run(world, world.task_queue.take()[0])
    assert reverted is not None and reverted.status is S.REVERTED
    assert imported(world, ready.id) == [] and world.balance(account.id) == 0


def as_task(world: World, start: Callable[[str, str], tuple[Import, bool]], import_id: str) -> Task:
    """Start a commit or revert as a Cloud Task working in chunks of 7 rows; the task."""
    world.imports.commit_chunk = 7
    world.imports.inline_rows = 0
    _, queued = start(USER, import_id)
    assert queued
    [task] = world.task_queue.take()
    assert isinstance(task, Task)
    return task


@pytest.mark.parametrize(
    ("at", "after_rows", "written"),
    [("settle", None, 7), ("write_commit", 3, 3), ("write_commit", 0, 0)],
)
def test_a_commit_killed_mid_way_resumes_to_the_exact_result(
    world: World, repo: Dying, at: str, after_rows: int | None, written: int
) -> None:
    account = world.account(opening=5_000)
    ready = staged(world, data(), account_id=account.id)
    lines = {r.id: r.amount or 0 for r in rows(world, ready.id)}
    task = as_task(world, world.imports.commit, ready.id)
    repo.arm(at, 2, after_rows)
    with pytest.raises(Interrupted):  # chunk 1 settled; chunk 2 (partly) written
        run(world, task)
    half = world.imports.get(USER, ready.id)
    assert half.status is S.COMMITTING and half.committed == 7
    # The owner edits and deletes transactions the interrupted run wrote but did not settle.
    unsettled = [r for r in rows(world, ready.id)[7:] if r.committed and r.transaction_id]
    assert len(unsettled) == written
    changed = 0
    if written:
        edited, deleted = unsettled[:2]
        assert edited.transaction_id and deleted.transaction_id
        old = world.ledger.get_transaction(USER, edited.transaction_id)
        assert old is not None
        # The resumed run tells an edit by updated_at != created_at: time must pass.
        world.clock.advance(timedelta(minutes=1))
        world.transactions.update(USER, edited.transaction_id, UpdateTransaction(amount=-123))
        world.ledger.delete_transaction(USER, deleted.transaction_id)
        changed = -123 - old.amount - lines[deleted.id]
    done = run(world, task)  # Cloud Tasks retries
    assert done is not None and done.status is S.COMMITTED and done.committed == LINES
    assert world.balance(account.id) == 5_000 + sum(lines.values()) + changed
    consistent(world.services, USER)


@pytest.mark.parametrize(("at", "after_rows"), [("settle", None), ("write_revert", 2)])
def test_a_revert_killed_mid_way_resumes_to_the_exact_result(
    world: World, repo: Dying, at: str, after_rows: int | None
) -> None:
    account = world.account(opening=5_000)
    ready = staged(world, data(), account_id=account.id)
    world.imports.commit(USER, ready.id)
    task = as_task(world, world.imports.revert, ready.id)
    repo.arm(at, 3, after_rows)
    with pytest.raises(Interrupted):
        run(world, task)
    half = world.imports.get(USER, ready.id)
    assert half.status is S.REVERTING and half.reverted == 14
    done = run(world, task)
    assert done is not None and done.status is S.REVERTED and done.reverted == LINES
    assert imported(world, ready.id) == [] and world.balance(account.id) == 5_000
    consistent(world.services, USER)
    # A redelivery of the finished task changes nothing.
    assert run(world, task) == done and world.balance(account.id) == 5_000


def test_rows_left_unclassified_are_not_in_the_chunk(world: World) -> None:
    """Errors and duplicates never reach the ledger, whatever the chunking."""
    account = world.account()
    blob = data() + b'not a date,"broken",1.00\n'
    ready = staged(world, blob, account_id=account.id)
    assert ready.counts.error == 1
    error = [r for r in rows(world, ready.id) if r.classification is Classification.ERROR]
    assert len(error) == 1 and not error[0].include
    world.imports.commit_chunk = 3
    done, _ = world.imports.commit(USER, ready.id)
    assert done.committed == LINES and len(imported(world, ready.id)) == LINES
