"""Deleting an account with transactions: hidden at once, then a chain of tasks that each
delete pages within a time budget (service/accounts.py), resumable and safe to deliver twice.

Time is the fake clock's: a store whose every page "takes" one second stands in for a slow
Firestore, so the budget is exercised without timing anything."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from tests.fakes.accounts import InMemoryAccounts
from tests.fakes.system import FixedClock, RecordingBus
from tests.fakes.tasks import RecordingQueue, Task
from tests.unit.conftest import OTHER, USER, World, make_world
from valorize.config import Settings
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.events import AccountDeleted, AccountDeleting
from valorize.domain.model import AccountDeletion, DeletionState
from valorize.service.accounts import DELETE_PATH, DELETE_STALLED

PAGE = 2
# Three one-second pages per delivery: the third passes the budget, then it hands on.
BUDGET = 2.5


class SlowPages(InMemoryAccounts):
    """Every page of a deletion takes a second of the fake clock; `fail_on` (a page count)
    raises there, as a delivery killed half-way; `meanwhile` runs (once) before a page, as
    another delivery interleaved."""

    clock: FixedClock
    pages = 0
    fail_on: int | None = None
    meanwhile: Callable[[], object] | None = None

    def delete_account_page(
        self, user_id: str, account_id: str, limit: int, now: datetime
    ) -> AccountDeletion | None:
        if self.meanwhile is not None:
            run, self.meanwhile = self.meanwhile, None
            run()
        self.pages += 1
        if self.pages == self.fail_on:
            raise ConnectionError("the instance went away")
        self.clock.advance(timedelta(seconds=1))
        return super().delete_account_page(user_id, account_id, limit, now)


@pytest.fixture
def world() -> World:
    clock = FixedClock()
    w = make_world(
        settings=Settings(account_delete_page=PAGE, account_delete_budget_seconds=BUDGET),
        clock=clock,
    )
    store = SlowPages(w.memory)
    store.clock = clock
    # The service reads its store through the Services: replace the member before first use.
    w.services.__dict__["account_store"] = store
    return w


@pytest.fixture
def bus(world: World) -> RecordingBus:
    recording = RecordingBus()
    world.services.__dict__["bus"] = recording
    return recording


def queued(world: World) -> list[Task]:
    queue: RecordingQueue = world.task_queue
    return [t for t in queue.tasks if t.path == DELETE_PATH]


def deliver(world: World, task: Task) -> AccountDeletion | None:
    return world.accounts.run_deletion(**task.payload)


def loaded(world: World, n: int) -> str:
    account = world.account()
    for i in range(n):
        world.txn(account.id, -(i + 1))
    return account.id


def test_a_delete_hides_the_account_and_answers_its_progress(world: World) -> None:
    account_id = loaded(world, 7)
    other = world.account(name="Savings")
    deletion = world.accounts.delete(USER, account_id, confirm=True)
    assert deletion is not None
    assert (deletion.state, deletion.deleted, deletion.total) == (DeletionState.RUNNING, 0, 7)
    # Hidden at once: gone from reads, refusing new transactions; nothing deleted yet.
    with pytest.raises(NotFound):
        world.accounts.get(USER, account_id)
    assert [a.id for a in world.accounts.list(USER, 10, None).items] == [other.id]
    with pytest.raises(ValidationFailed):
        world.txn(account_id, -1)
    assert len(world.memory.space(USER).transactions) == 7
    [task] = queued(world)
    assert task.payload == {"user_id": USER, "account_id": account_id, "step": 0}
    assert task.name == f"account-delete-{account_id}-0"
    assert world.accounts.deletion(USER, account_id) == deletion


def test_each_delivery_deletes_within_its_budget_then_hands_on(world: World) -> None:
    account_id = loaded(world, 13)  # 7 pages of 2
    world.accounts.delete(USER, account_id, confirm=True)
    progress = []
    while tasks := world.task_queue.take(DELETE_PATH):
        [task] = tasks  # one chain: each delivery enqueues exactly one successor
        before = world.account_store.pages
        result = deliver(world, task)
        assert result is not None
        assert world.account_store.pages - before <= 3
        progress.append((task.payload["step"], result.state, result.deleted))
    assert progress == [
        (0, DeletionState.RUNNING, 6),
        (1, DeletionState.RUNNING, 12),
        (2, DeletionState.DONE, 13),
    ]
    done = world.accounts.deletion(USER, account_id)
    assert (done.state, done.deleted, done.total) == (DeletionState.DONE, 13, 13)
    assert world.memory.space(USER).transactions == {}
    assert account_id not in world.memory.space(USER).accounts


def test_progress_and_the_end_are_announced(world: World, bus: RecordingBus) -> None:
    account_id = loaded(world, 7)
    bus.events.clear()
    world.delete_account(account_id)
    assert bus.events == [
        AccountDeleting(USER, account_id, 0, 7),
        AccountDeleting(USER, account_id, 6, 7),
        AccountDeleted(USER, account_id),
    ]


def test_a_delivery_killed_half_way_is_resumed_by_its_retry(world: World) -> None:
    account_id = loaded(world, 9)
    world.accounts.delete(USER, account_id, confirm=True)
    [task] = world.task_queue.take(DELETE_PATH)
    world.account_store.fail_on = 2
    with pytest.raises(ConnectionError):
        deliver(world, task)  # Cloud Tasks retries it: same body, same step
    # The first page stays deleted and counted.
    assert world.accounts.deletion(USER, account_id).deleted == 2
    assert deliver(world, task) is not None
    world.run_deletions()
    done = world.accounts.deletion(USER, account_id)
    assert (done.state, done.deleted) == (DeletionState.DONE, 9)
    assert world.memory.space(USER).transactions == {}


def test_a_duplicate_delivery_does_no_work_twice(world: World, bus: RecordingBus) -> None:
    account_id = loaded(world, 9)
    world.accounts.delete(USER, account_id, confirm=True)
    [first] = world.task_queue.take(DELETE_PATH)
    deliver(world, first)
    pages = world.account_store.pages
    # The same task again, after its successor was enqueued: no page, the successor's name
    # again (Cloud Tasks refuses it as a duplicate; the fake queue too).
    again = deliver(world, first)
    assert again is not None and again.step == 1
    assert world.account_store.pages == pages
    [successor] = world.task_queue.take(DELETE_PATH)
    assert successor.payload["step"] == 1
    deliver(world, successor)
    bus.events.clear()
    # A duplicate of the last delivery, once done: nothing happens, nothing is announced.
    done = deliver(world, successor)
    assert done is not None and done.state is DeletionState.DONE
    assert bus.events == [] and world.task_queue.take(DELETE_PATH) == []
    assert world.accounts.deletion(USER, account_id).deleted == 9


def test_two_deliveries_of_one_step_at_once_leave_one_successor(world: World) -> None:
    account_id = loaded(world, 13)
    world.accounts.delete(USER, account_id, confirm=True)
    [task] = world.task_queue.take(DELETE_PATH)
    # A duplicate delivery runs whole while the first is in its first page.
    world.account_store.meanwhile = lambda: deliver(world, task)
    deliver(world, task)
    [successor] = world.task_queue.take(DELETE_PATH)
    assert successor.name == f"account-delete-{account_id}-1"
    deliver(world, successor)
    world.run_deletions()
    done = world.accounts.deletion(USER, account_id)
    assert (done.state, done.deleted) == (DeletionState.DONE, 13)  # each counted once


def test_asking_again_while_it_runs_answers_the_same_deletion(world: World) -> None:
    account_id = loaded(world, 5)
    first = world.accounts.delete(USER, account_id, confirm=True)
    world.clock.advance(timedelta(seconds=30))
    # Even without ?confirm: it was confirmed when it started.
    assert world.accounts.delete(USER, account_id, confirm=False) == first
    assert len(queued(world)) == 1


def test_asking_again_after_its_task_gave_up_resumes_it(world: World) -> None:
    account_id = loaded(world, 5)
    world.accounts.delete(USER, account_id, confirm=True)
    world.task_queue.take(DELETE_PATH)  # lost: Cloud Tasks gave up on it
    world.clock.advance(DELETE_STALLED)
    resumed = world.accounts.delete(USER, account_id, confirm=True)
    assert resumed is not None and resumed.step == 1
    [task] = queued(world)
    assert task.payload["step"] == 1
    world.run_deletions()
    assert world.accounts.deletion(USER, account_id).state is DeletionState.DONE


def test_a_repeat_queues_the_task_a_failed_enqueue_lost_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Cloud Tasks unreachable at the DELETE: the account is hidden and its deletion recorded,
    # the client gets the error (a 503 with Retry-After at the edge) and asks again. The
    # repeat must queue the step's task then, not wait DELETE_STALLED for a task never made.
    account_id = loaded(world, 5)
    queue: RecordingQueue = world.task_queue

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Cloud Tasks unreachable")

    monkeypatch.setattr(queue, "enqueue", unreachable)
    with pytest.raises(ConnectionError):
        world.accounts.delete(USER, account_id, confirm=True)
    monkeypatch.undo()
    world.clock.advance(timedelta(seconds=5))
    again = world.accounts.delete(USER, account_id, confirm=True)
    assert again is not None and (again.state, again.step) == (DeletionState.RUNNING, 0)
    [task] = queued(world)
    assert task.payload["step"] == 0
    world.run_deletions()
    assert world.accounts.deletion(USER, account_id).state is DeletionState.DONE


def test_an_empty_account_goes_at_once(world: World, bus: RecordingBus) -> None:
    account = world.account()
    bus.events.clear()
    assert world.accounts.delete(USER, account.id, confirm=False) is None
    assert queued(world) == []
    assert bus.events == [AccountDeleted(USER, account.id)]
    with pytest.raises(NotFound):
        world.accounts.delete(USER, account.id, confirm=True)  # gone: a repeat is a 404
    assert world.accounts.deletion(USER, account.id).state is DeletionState.DONE


def test_deletions_are_private(world: World) -> None:
    account_id = loaded(world, 3)
    with pytest.raises(NotFound):
        world.accounts.delete(OTHER, account_id, confirm=True)
    world.accounts.delete(USER, account_id, confirm=True)
    with pytest.raises(NotFound):
        world.accounts.deletion(OTHER, account_id)
    with pytest.raises(NotFound):
        world.accounts.delete(OTHER, account_id, confirm=True)
    # A task naming another user finds no deletion: acknowledged as gone.
    assert world.accounts.run_deletion(OTHER, account_id, 0) is None
    assert world.accounts.deletion(USER, account_id).deleted == 0
