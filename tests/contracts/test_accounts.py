"""The AccountStore port."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tests.contracts.conftest import NOW, Make, new_id
from tests.contracts.test_ledger import consistent, every, transfer
from valorize.bootstrap import Services
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.limits import SAFE_MAX, OutOfSafeRange
from valorize.domain.model import Account, AccountDeletion, AccountType, DeletionState
from valorize.service.ports import IdempotencyRecord, IdempotentReplay

LATER = NOW + timedelta(minutes=1)


def test_accounts_round_trip(services: Services, make: Make) -> None:
    uid = make.user()
    full = make.account(
        uid,
        name="Cartão ü",
        type=AccountType.CREDIT,
        currency="USD",
        opening_balance=-5,
        balance=-5,
        bank_code="341",
        bank_name="Itaú",
        number="1234-5",
        low_balance_threshold=-100,
    )
    plain = make.account(uid)
    store = services.account_store
    assert store.get_account(uid, full.id) == full
    assert store.get_account(uid, new_id()) is None
    assert store.get_account(make.user(), full.id) is None  # another user's
    found = store.get_accounts(uid, [plain.id, full.id, new_id(), full.id])
    assert found == {full.id: full, plain.id: plain}


def test_accounts_page_by_id(services: Services, make: Make) -> None:
    uid = make.user()
    made = sorted((make.account(uid, name=f"A{i}") for i in range(5)), key=lambda a: a.id)
    seen: list[Account] = []
    cursor = None
    while True:
        page = services.account_store.list_accounts(uid, 2, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made
    with pytest.raises(ValidationFailed):
        services.account_store.list_accounts(uid, 2, encode_cursor("../x"))


def test_the_idempotency_record_commits_with_the_account(services: Services, make: Make) -> None:
    uid = make.user()
    record = IdempotencyRecord("a" * 64, "fp", 201, {"n": 1}, datetime(2100, 1, 1, tzinfo=UTC))
    account = replace(make.account(uid), id=new_id())
    services.account_store.add_account(uid, account, record)
    with pytest.raises(IdempotentReplay) as replay:
        services.account_store.add_account(uid, replace(account, id=new_id()), record)
    assert replay.value.record == record
    assert len(services.account_store.list_accounts(uid, 10, None).items) == 2


def test_an_update_keeps_the_ledgers_balance_and_count(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid, opening_balance=100, balance=100)
    make.stored(uid, account, -30)  # balance 70, one transaction

    def reopen(stale: Account) -> Account:
        # What the service does: the opening balance moves the balance by as much.
        return replace(
            stale,
            name="Main",
            opening_balance=stale.opening_balance + 50,
            balance=stale.balance + 50,
            transaction_count=99,  # not the account's to change
        )

    updated = services.account_store.update_account(uid, account.id, reopen)
    assert updated.name == "Main"
    stored = services.account_store.get_account(uid, account.id)
    assert stored is not None
    assert (stored.name, stored.opening_balance, stored.balance) == ("Main", 150, 120)
    assert stored.transaction_count == 1
    consistent(services, uid)
    with pytest.raises(NotFound):
        services.account_store.update_account(uid, new_id(), lambda a: a)


def test_an_opening_balance_beyond_the_limit_is_refused(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid, opening_balance=SAFE_MAX - 1, balance=SAFE_MAX - 1)
    with pytest.raises(OutOfSafeRange) as refused:
        services.account_store.update_account(
            uid,
            account.id,
            lambda a: replace(a, opening_balance=SAFE_MAX + 1, balance=a.balance + 2),
        )
    assert refused.value.errors[0].field == "opening_balance"
    assert services.account_store.get_account(uid, account.id) == account


def delete_all(services: Services, uid: str, account_id: str, page: int = 200) -> None:
    """What the deletion's tasks do: hide it, then pages until it is done."""
    services.account_store.hide_account(uid, account_id, NOW)
    while True:
        deletion = services.account_store.delete_account_page(uid, account_id, page, NOW)
        if deletion is None or deletion.state is DeletionState.DONE:
            return


def test_deleting_an_account_takes_its_transactions_off_everything(
    services: Services, make: Make
) -> None:
    uid = make.user()
    doomed, kept = make.account(uid), make.account(uid, name="Savings")
    for amount in (-100, -200, 300):
        make.stored(uid, doomed, amount)
    out, into = transfer(make, doomed, kept, 700)
    services.ledger.add_transactions(uid, [out, into])
    mine = make.stored(uid, kept, -5)
    delete_all(services, uid, doomed.id, page=2)
    assert services.account_store.get_account(uid, doomed.id) is None
    left = {t.id: t for t in every(services, uid)}
    # The other side of the transfer stays, still a transfer, unlinked.
    assert left == {
        mine.id: mine,
        into.id: replace(into, counterpart_id=None, counterpart_account_id=None),
    }
    consistent(services, uid)
    delete_all(services, uid, doomed.id)  # again: nothing left to do
    consistent(services, uid)


def test_a_hidden_account_is_gone_from_every_read(services: Services, make: Make) -> None:
    uid = make.user()
    doomed, kept = make.account(uid), make.account(uid, name="Savings")
    make.stored(uid, doomed, -100)
    make.stored(uid, doomed, -200)
    store = services.account_store
    hidden = store.hide_account(uid, doomed.id, LATER)
    assert hidden is not None
    deletion, started = hidden
    assert started
    assert deletion == AccountDeletion(
        doomed.id, DeletionState.RUNNING, total=2, deleted=0, started_at=LATER, updated_at=LATER
    )
    assert store.get_account(uid, doomed.id) is None
    assert store.get_accounts(uid, [doomed.id, kept.id]) == {kept.id: kept}
    assert store.list_accounts(uid, 10, None).items == [kept]
    with pytest.raises(NotFound):
        store.update_account(uid, doomed.id, lambda a: replace(a, name="x"))
    # Hidden again (a repeated DELETE): the deletion as recorded, not a second one.
    assert store.hide_account(uid, doomed.id, NOW) == (deletion, False)
    assert store.get_deletion(uid, doomed.id) == deletion
    assert store.get_deletion(make.user(), doomed.id) is None  # another user's
    assert store.hide_account(uid, new_id(), NOW) is None
    # Nothing was deleted yet: the ledger still holds its transactions.
    assert len(every(services, uid)) == 2


def test_the_deletion_counts_its_pages_and_ends_with_the_account(
    services: Services, make: Make
) -> None:
    uid = make.user()
    doomed = make.account(uid)
    for i in range(5):
        make.stored(uid, doomed, -10 * (i + 1))
    store = services.account_store
    store.hide_account(uid, doomed.id, NOW)
    seen = []
    while True:
        deletion = store.delete_account_page(uid, doomed.id, 2, LATER)
        assert deletion is not None
        seen.append((deletion.state, deletion.deleted))
        consistent(services, uid)  # between pages too
        if deletion.state is DeletionState.DONE:
            break
    assert seen == [
        (DeletionState.RUNNING, 2),
        (DeletionState.RUNNING, 4),
        (DeletionState.RUNNING, 5),
        (DeletionState.DONE, 5),
    ]
    done = store.get_deletion(uid, doomed.id)
    assert done is not None
    assert (done.state, done.deleted, done.total, done.finished_at) == (
        DeletionState.DONE,
        5,
        5,
        LATER,
    )
    assert every(services, uid) == []
    # Done: a late delivery changes nothing, and the account is gone for good.
    assert store.delete_account_page(uid, doomed.id, 2, NOW) == done
    assert store.hide_account(uid, doomed.id, NOW) == (done, False)
    assert store.get_account(uid, doomed.id) is None
    assert store.delete_account_page(uid, new_id(), 2, NOW) is None


def test_a_deletion_advances_one_step_at_a_time(services: Services, make: Make) -> None:
    uid = make.user()
    doomed = make.account(uid)
    store = services.account_store
    store.hide_account(uid, doomed.id, NOW)
    moved = store.advance_deletion(uid, doomed.id, 0, LATER)
    assert moved is not None and (moved.step, moved.updated_at) == (1, LATER)
    # A duplicate delivery of step 0 does not move it again.
    again = store.advance_deletion(uid, doomed.id, 0, NOW)
    assert again is not None and again.step == 1
    assert store.advance_deletion(uid, new_id(), 0, NOW) is None


def test_concurrent_runs_delete_and_count_each_transaction_once(
    services: Services, make: Make, concurrent: None
) -> None:
    uid = make.user()
    doomed, kept = make.account(uid), make.account(uid, name="Savings")
    for i in range(12):
        make.stored(uid, doomed, -(i + 1))
    out, into = transfer(make, doomed, kept, 50)
    services.ledger.add_transactions(uid, [out, into])
    services.account_store.hide_account(uid, doomed.id, NOW)

    def run() -> None:
        while True:
            d = services.account_store.delete_account_page(uid, doomed.id, 3, NOW)
            if d is None or d.state is DeletionState.DONE:
                return

    with ThreadPoolExecutor(3) as pool:
        for future in [pool.submit(run) for _ in range(3)]:
            future.result()
    done = services.account_store.get_deletion(uid, doomed.id)
    assert done is not None and (done.state, done.deleted, done.total) == (
        DeletionState.DONE,
        13,
        13,
    )
    assert [t.id for t in every(services, uid)] == [into.id]
    consistent(services, uid)


def test_an_account_left_hidden_by_the_synchronous_delete_is_taken_up(
    services: Services, make: Make, backend: str
) -> None:
    if backend == "fake":
        pytest.skip("only Firestore holds accounts hidden before deletions were recorded")
    uid = make.user()
    doomed = make.account(uid)
    make.stored(uid, doomed, -100)
    ref = services.firestore.collection("users").document(uid).collection("accounts")
    ref.document(doomed.id).update({"deleting": True})
    assert services.account_store.get_account(uid, doomed.id) is None
    hidden = services.account_store.hide_account(uid, doomed.id, NOW)
    assert hidden is not None and hidden[1] and hidden[0].total == 1
    delete_all(services, uid, doomed.id)
    assert every(services, uid) == []
    consistent(services, uid)


def test_a_delivery_that_read_the_deletion_before_it_finished_leaves_it_as_finished(
    services: Services, make: Make, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deliveries of the last page race: one finishes the deletion; the other had read
    it unfinished just before, then finds nothing left. It must not finish it again (a
    second `finished_at`, seen by the e2e test under load)."""
    if backend == "fake":
        pytest.skip("the fakes are single-threaded; races are the adapters' to survive")
    uid = make.user()
    doomed = make.account(uid)
    make.stored(uid, doomed, -100)
    store = services.account_store
    store.hide_account(uid, doomed.id, NOW)
    progress = store._deletion_ref(uid, doomed.id)  # type: ignore[attr-defined]
    unfinished = progress.get()  # what the slower delivery read
    delete_all(services, uid, doomed.id)
    finished = store.get_deletion(uid, doomed.id)
    assert finished is not None and finished.state is DeletionState.DONE
    reads = iter([unfinished])
    real = type(progress).get

    def stale_once(ref: object, *args: object, **kwargs: object) -> object:
        if getattr(ref, "path", None) == progress.path:
            return next(reads, None) or real(ref, *args, **kwargs)  # type: ignore[arg-type]
        return real(ref, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(type(progress), "get", stale_once)
    later = NOW + timedelta(seconds=1)
    answered = store.delete_account_page(uid, doomed.id, 200, later)
    monkeypatch.undo()
    assert answered == finished
    assert store.get_deletion(uid, doomed.id) == finished
