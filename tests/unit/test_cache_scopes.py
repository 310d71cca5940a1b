"""Cache invalidation of the scopes kept by one store each (service/cache_scopes.py), on
fakes: every write of the services and of their task workers bumps the writer's version of
its scope, after the write; reads bump nothing; the ledger's version is left alone."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date

import pytest

from tests.fakes.imports import ROW_BATCH, InMemoryRowWriter
from tests.unit.conftest import USER, World, make_world, monthly_rent
from tests.unit.test_import_service import data
from valorize.config import Settings
from valorize.domain.automation import AutomationKind
from valorize.domain.imports import Classification, StagedRow
from valorize.domain.model import ApiToken, User
from valorize.domain.notifications import NotificationKind, NotificationRequest
from valorize.service import cache_scopes as c
from valorize.service.auth import TOUCH_EVERY
from valorize.service.imports import Upload
from valorize.service.imports.ledger_runs import COMMIT_PATH
from valorize.service.imports.upload import PROCESS_PATH
from valorize.service.ports import AccountStore, NotificationStore, RecurrenceStore, RuleStore
from valorize.service.ports.cache import LEDGER, Outcome, Scope
from valorize.service.ports.imports import ImportRepository
from valorize.service.requests import CreateToken, Login, Register
from valorize.service.requests.recurrences import UpdateRecurrence
from valorize.service.requests.rules import ApplyRules, CreateRule, UpdateRule


class Bumps:
    """A query cache that only records its bumps (user, scope)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Scope]] = []

    def bump(self, user_id: str, scope: Scope = LEDGER) -> None:
        self.seen.append((user_id, scope))

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes], scope: Scope = LEDGER
    ) -> tuple[bytes, Outcome]:
        return render(), "bypass"

    def take(self) -> list[tuple[str, Scope]]:
        seen, self.seen = self.seen, []
        return seen

    def scopes(self) -> set[Scope]:
        return {scope for _, scope in self.take()}


BRL = {"preferred_currency": "BRL"}


@pytest.fixture
def bumps() -> Bumps:
    return Bumps()


@pytest.fixture
def world(bumps: Bumps) -> World:
    built = make_world(query_cache=bumps)
    now = built.clock.now()
    user = User(USER, "ana@example.com", "Ana", "BRL", "pt-BR", now)
    built.user_store.create_user(user, "h", [], ApiToken("t" * 32, USER, "t", now), "s")
    return built


# --- the ports ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "watch"),
    [
        (AccountStore, c.ACCOUNTS),
        (NotificationStore, c.NOTIFICATIONS),
        (RuleStore, c.RULES),
        (RecurrenceStore, c.RECURRENCES),
        (ImportRepository, c.IMPORTS),
    ],
)
def test_every_write_of_a_watched_port_names_its_user_first(port: type, watch: c.Watched) -> None:
    methods = {
        name: member
        for name, member in vars(port).items()
        if callable(member) and not name.startswith("_")
    }
    assert watch.reads <= set(methods), watch.reads - set(methods)  # no misspelt read
    assert watch.writers <= set(methods)
    for name, method in methods.items():
        if name not in watch.reads:
            first = list(inspect.signature(method).parameters)[1]
            assert first == "user_id", f"{port.__name__}.{name} bumps the user of `{first}`"


# --- the wrapper ----------------------------------------------------------------------------------


class Notes:
    def __init__(self) -> None:
        self.kept: dict[str, int] = {}

    def get_note(self, user_id: str) -> int:
        return self.kept.get(user_id, 0)

    def set_note(self, user_id: str, value: int) -> None:
        self.kept[user_id] = value

    def fail(self, user_id: str) -> None:
        self.kept[user_id] = -1  # landed in part, then failed
        raise RuntimeError("boom")


def test_a_write_bumps_after_it_landed_a_read_never_and_a_failed_write_still() -> None:
    notes = Notes()
    seen: list[tuple[str, Scope, int]] = []
    store = c.watched(
        notes,
        c.Watched("rules", frozenset({"get_note"})),
        lambda user, scope: seen.append((user, scope, notes.get_note(user))),
    )
    assert store.get_note("u") == 0 and seen == []
    store.set_note("u", 7)
    assert seen == [("u", "rules", 7)]  # the bump saw the write
    with pytest.raises(RuntimeError):
        store.fail("u")
    assert seen[-1] == ("u", "rules", -1)


def test_a_row_writer_bumps_per_landed_batch_and_when_it_closes() -> None:
    memory_rows: dict[str, StagedRow] = {}
    seen: list[int] = []

    class Rows:
        def row_writer(self, user_id: str, import_id: str) -> InMemoryRowWriter:
            return InMemoryRowWriter(memory_rows, batch_size=2)

    store = c.watched(
        Rows(),
        c.Watched("imports", frozenset(), frozenset({"row_writer"})),
        lambda u, s: seen.append(len(memory_rows)),
    )
    writer = store.row_writer(USER, "i")
    for n in range(5):
        writer.add(StagedRow(f"r{n}", 0, n, n + 1, Classification.ERROR, False, reason="x"))
    assert seen == [2, 4]  # once per batch, after it landed: not per row
    writer.close()
    assert seen == [2, 4, 5] and writer.written == 5


# --- through the services, as the functions and their workers call them --------------------------


def test_notifications_every_write_bumps_the_inbox_and_no_read_does(
    world: World, bumps: Bumps
) -> None:
    service = world.notifications
    request = NotificationRequest(USER, "n1", NotificationKind.IMPORT_FAILED, "T", "B", {})
    service.deliver(request)  # the notify worker
    assert bumps.scopes() == {"notifications"}
    service.deliver(request)  # redelivered: nothing new, a needless bump at most
    bumps.take()
    service.list(USER, False, 20, None)
    service.unread_count(USER)
    service.preferences(USER)
    assert bumps.take() == []
    for write in (
        lambda: service.mark_read(USER, "n1"),
        lambda: service.mark_all_read(USER),
        lambda: service.update_preferences(USER, threshold=500),
    ):
        write()
        assert bumps.scopes() == {"notifications"}


def rule(name: str = "Uber") -> CreateRule:
    return CreateRule.model_validate(
        {
            "name": name,
            "conditions": [{"field": "description", "op": "contains", "value": "uber"}],
            "actions": [{"action": "add_note", "value": "ride"}],
        }
    )


def test_rules_every_write_and_every_page_of_a_job_bumps_the_rules(
    world: World, bumps: Bumps
) -> None:
    account = world.account()
    world.txn(account.id, -500, description="Uber")
    bumps.take()
    made = world.rules.create(USER, rule())
    assert bumps.scopes() == {"rules"}
    world.rules.list(USER, 50, None)
    world.rules.get(USER, made.id)
    assert bumps.take() == []
    world.rules.update(USER, made.id, UpdateRule(name="Rides"))
    assert bumps.scopes() == {"rules"}
    job = world.rules.start_apply(USER, ApplyRules())
    assert bumps.scopes() == {"rules"}
    while tasks := world.task_queue.take():
        for task in tasks:
            p = task.payload
            world.rules.run_apply_page(p["user_id"], p["job_id"], p["page"], p["cursor"])
    # The job's counts moved (its page): the rules scope; the note it added: the ledger's.
    assert bumps.scopes() == {"rules", LEDGER}
    assert world.rules.job(USER, job.id).status.value == "done"
    world.rules.delete(USER, made.id)
    assert bumps.scopes() == {"rules"}


def test_recurrences_every_write_and_every_automation_run_bumps_the_recurrences(
    world: World, bumps: Bumps
) -> None:
    account = world.account()
    bumps.take()
    rec = world.recurrences.create(USER, monthly_rent(account.id))
    assert bumps.scopes() == {"recurrences"}
    world.recurrences.list(USER, 50, None)
    world.recurrences.get(USER, rec.id)
    assert bumps.take() == []
    # The automate worker: occurrences created (the ledger's) and next_due moved (ours).
    world.automations.run_user(USER, AutomationKind.DAILY, date(2024, 3, 31))
    assert bumps.scopes() == {"recurrences", LEDGER}
    world.recurrences.update(USER, rec.id, UpdateRecurrence(description="Rent!"))
    assert bumps.scopes() == {"recurrences"}
    world.recurrences.delete(USER, rec.id)
    assert bumps.scopes() == {"recurrences"}


def test_imports_the_upload_and_every_step_of_the_worker_bump_the_imports(
    world: World, bumps: Bumps
) -> None:
    world.services.imports.progress_every = ROW_BATCH  # a progress tick per batch
    service = world.imports
    account = world.account()
    bumps.take()
    with service.receive(USER, None) as intake:
        intake.write(data(3 * ROW_BATCH))
        given = Upload("statement.csv", preset="generic", account_id=account.id)
        record, _ = service.upload(USER, given, intake)
    assert bumps.scopes() == {"imports"}
    [task] = world.task_queue.take(PROCESS_PATH)
    ready = service.process(task.payload["user_id"], task.payload["import_id"])
    assert ready is not None and ready.status.value == "ready"
    staged = [scope for _, scope in bumps.take()]
    # Its states, its progress ticks and its rows' batches: many, and none of the ledger's.
    assert set(staged) == {"imports"} and len(staged) >= 6
    service.list_imports(USER, 20, None)
    service.get(USER, record.id)
    service.rows(USER, record.id, None, 50, None)
    assert bumps.take() == []
    _, queued = service.commit(USER, record.id)
    assert queued  # large: the commit worker carries on
    while tasks := world.task_queue.take(COMMIT_PATH):
        for task in tasks:
            done = service.run_commit(task.payload["user_id"], task.payload["import_id"])
    assert done is not None and done.status.value == "committed"
    assert bumps.scopes() == {"imports", LEDGER}


def test_auth_every_token_change_bumps_the_auth_scope_and_reads_do_not(bumps: Bumps) -> None:
    world = make_world(query_cache=bumps)
    auth = world.auth
    user, first = auth.register(
        Register(email="bo@example.com", password="a long password", name="Bo", **BRL)
    )
    bumps.take()
    auth.authenticate(first.plaintext)  # its first use: last_used_at is set
    assert bumps.take() == [(user.id, "auth")]
    auth.me(user.id)
    auth.list_tokens(user.id)
    auth.authenticate(first.plaintext)  # used a moment ago: not written again
    assert bumps.take() == []
    world.clock.advance(TOUCH_EVERY * 2)
    auth.authenticate(first.plaintext)  # its last_used_at moves
    assert bumps.take() == [(user.id, "auth")]
    for write in (
        lambda: auth.login(Login(email="bo@example.com", password="a long password"), "ip"),
        lambda: auth.create_token(user.id, CreateToken(name="ci")),
        lambda: auth.revoke_token(user.id, first.token.id),
    ):
        write()
        assert bumps.take() == [(user.id, "auth")]


def test_accounts_every_page_an_account_deletion_deletes_bumps_the_ledger(bumps: Bumps) -> None:
    # One delivery deletes pages until its time budget runs out (never, on a fixed clock),
    # publishing nothing in between: each page must bump, for the deletion's progress and
    # the balances, lists and dashboards it moves.
    world = make_world(query_cache=bumps, settings=Settings(account_delete_page=2))
    account = world.account()
    for n in range(7):
        world.txn(account.id, -(n + 1))
    bumps.take()
    world.accounts.delete(USER, account.id, confirm=True)
    hidden = len(bumps.take())
    world.accounts.deletion(USER, account.id)
    assert bumps.take() == []
    world.run_deletions()
    pages = bumps.take()
    assert hidden >= 1 and set(pages) == {(USER, LEDGER)}
    assert len(pages) >= 4  # 7 transactions, 2 a page
