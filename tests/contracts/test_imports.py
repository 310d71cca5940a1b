"""The ImportRepository port (service/ports/imports.py): the import document and its
transitions, staged rows and their review, and the chunked, resumable writes a commit and a
revert are made of (write the chunk's transactions, then settle it once at the cursor)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from tests.contracts.conftest import NOW, Make, new_id
from tests.contracts.test_accounts import delete_all
from tests.contracts.test_ledger import consistent
from valorize.bootstrap import Services
from valorize.domain.errors import Conflict, NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.imports import (
    Classification,
    Counts,
    Import,
    ImportStatus,
    StagedRow,
    StatementSummary,
    row_id,
    transaction_id,
)
from valorize.domain.model import Account, Origin, Transaction
from valorize.service.ports.imports import ImportRepository, RowsChanged

S = ImportStatus


def record(**over: Any) -> Import:
    fields: dict[str, Any] = {
        "id": new_id(),
        "status": S.UPLOADED,
        "file_name": "statement ü.ofx",
        "object_name": "imports/u/x.ofx",
        "size": 1_234,
        "sha256": "0" * 64,
        "created_at": NOW,
        "updated_at": NOW,
        **over,
    }
    return Import(**fields)


def row(n: int, account: Account | None = None, **over: Any) -> StagedRow:
    fields: dict[str, Any] = {
        "id": row_id(0, n),
        "statement": 0,
        "ordinal": n,
        "line_no": n + 10,
        "classification": Classification.NEW,
        "include": True,
        "account_id": account.id if account else None,
        "date": date(2024, 1, 1) + timedelta(days=n),
        "amount": -100 * n,
        "currency": "BRL",
        "description": f"Line {n}",
        "fitid": f"F{n}",
        **over,
    }
    return StagedRow(**fields)


def stage(repo: ImportRepository, uid: str, import_id: str, rows: list[StagedRow]) -> None:
    writer = repo.row_writer(uid, import_id)
    for r in rows:
        writer.add(r)
    writer.close()


def ready(repo: ImportRepository, uid: str, rows: list[StagedRow], **over: Any) -> Import:
    """An import staged with `rows`, ready for review."""
    made = record(status=S.READY, counts=Counts(new=len(rows)), **over)
    assert repo.create_import(uid, made) is None
    stage(repo, uid, made.id, rows)
    return made


def to(repo: ImportRepository, uid: str, import_id: str, status: ImportStatus) -> Import:
    _, after = repo.transition(uid, import_id, lambda r: replace(r, status=status, cursor=None))
    assert after is not None
    return after


def made(import_id: str, r: StagedRow, account: Account) -> Transaction:
    assert r.date is not None and r.amount is not None
    return Transaction(
        id=transaction_id(import_id, r.id),
        account_id=account.id,
        amount=r.amount,
        currency=account.currency,
        date=r.date,
        description=r.description or "",
        created_at=NOW,
        updated_at=NOW,
        origin=Origin.IMPORT,
        fitid=r.fitid,
        import_id=import_id,
    )


def pairs(
    import_id: str, rows: list[StagedRow], account: Account
) -> list[tuple[StagedRow, Transaction]]:
    """Each row (marked with its transaction's id, as the service hands it) and the
    transaction it becomes."""
    out = []
    for r in rows:
        txn = made(import_id, r, account)
        out.append((replace(r, transaction_id=txn.id), txn))
    return out


def commit_chunks(
    repo: ImportRepository, uid: str, imp: Import, account: Account, size: int
) -> Import:
    """What the service's runner does, chunk by chunk from the cursor, to the end."""
    current = imp
    while rows := repo.chunk(uid, imp.id, S.COMMITTING, current.cursor, size):
        created = pairs(imp.id, rows, account)
        repo.write_commit(uid, imp.id, created, [])
        settled = repo.settle(
            uid, imp.id, S.COMMITTING, current.cursor, rows[-1].id, [(None, t) for _, t in created]
        )
        assert settled is not None
        current = settled
    return current


# --- the import document ----------------------------------------------------------------------


def test_an_import_is_created_once_and_read_back_by_its_owner_only(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    first = record(currency="BRL", account_id=new_id(), mapping='{"date": 0}', format="csv")
    assert repo.create_import(uid, first) is None
    assert repo.get_import(uid, first.id) == first
    # A second create with the same id (a concurrent retry) gets the first one back.
    assert repo.create_import(uid, replace(first, file_name="other.csv")) == first
    assert repo.get_import(uid, first.id) == first
    assert repo.get_import(other, first.id) is None
    assert repo.get_import(uid, new_id()) is None
    for malformed in ("nope", "../x", "k" + "0" * 31 + "/rows", ""):
        assert repo.get_import(uid, malformed) is None
    keyed = record(id="k" + "a" * 31)  # the id form of an upload with an Idempotency-Key
    assert repo.create_import(uid, keyed) is None
    assert repo.get_import(uid, keyed.id) == keyed


def test_imports_are_listed_newest_first_in_pages(services: Services, make: Make) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    ids = sorted(new_id() for _ in range(5))
    stored = [
        record(id=ids[0], created_at=NOW),
        record(id=ids[1], created_at=NOW + timedelta(hours=2)),
        record(id=ids[2], created_at=NOW + timedelta(hours=1)),
        record(id=ids[3], created_at=NOW + timedelta(hours=1)),  # same time: by id, descending
        record(id=ids[4], created_at=NOW - timedelta(days=1)),
    ]
    for r in stored:
        assert repo.create_import(uid, r) is None
    assert repo.create_import(other, record()) is None
    pages, cursor = [], None
    while True:
        page = repo.list_imports(uid, 2, cursor)
        pages.append([r.id for r in page.items])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == [[ids[1], ids[3]], [ids[2], ids[0]], [ids[4]]]
    whole = repo.list_imports(uid, 5, None)
    assert [r.id for r in whole.items] == [ids[1], ids[3], ids[2], ids[0], ids[4]]
    assert whole.next_cursor is None
    assert repo.list_imports(make.user(), 10, None).items == []
    with pytest.raises(ValidationFailed):
        repo.list_imports(uid, 2, "not a cursor")
    with pytest.raises(ValidationFailed):  # the form of one, but of no import of this user
        repo.list_imports(uid, 2, encode_cursor(new_id()))


def test_a_transition_writes_what_decide_returns(services: Services, make: Make) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    uploaded = record()
    repo.create_import(uid, uploaded)
    later = NOW + timedelta(minutes=5)
    before, after = repo.transition(uid, uploaded.id, lambda r: r.start(later))
    assert before == uploaded
    assert after is not None and after.status is S.PROCESSING and after.attempts == 1
    assert repo.get_import(uid, uploaded.id) == after
    # decide says no: nothing written, the import as it is comes back.
    assert repo.transition(uid, uploaded.id, lambda r: r.begin_commit(later)) == (after, None)
    assert repo.get_import(uid, uploaded.id) == after
    summary = StatementSummary(
        0,
        "bank",
        "BRL",
        new_id(),
        True,
        3,
        1,
        "001",
        "9-1",
        date(2024, 1, 2),
        date(2024, 1, 9),
        500,
        None,
        10,
        7,
    )
    _, staged = repo.transition(
        uid,
        uploaded.id,
        lambda r: r.staged(
            later, Counts(1, 1, 1, 1), 4, (summary,), (summary.account_id,), [date(2024, 1, 2)]
        ),
    )
    assert staged is not None and repo.get_import(uid, uploaded.id) == staged

    # A decide that raises writes nothing.
    def refuse(_: Import) -> Import | None:
        raise Conflict("no")

    with pytest.raises(Conflict):
        repo.transition(uid, uploaded.id, refuse)
    assert repo.get_import(uid, uploaded.id) == staged

    # No such import (or another user's, or a malformed id): decide is not even asked.
    def never(_: Import) -> Import | None:
        raise AssertionError("decide called")

    for owner, import_id in ((uid, new_id()), (other, uploaded.id), (uid, "../x")):
        assert repo.transition(owner, import_id, never) == (None, None)


def test_progress_is_saved_on_the_import(services: Services, make: Make) -> None:
    repo = services.import_store
    uid = make.user()
    processing = record(status=S.PROCESSING)
    repo.create_import(uid, processing)
    repo.save_progress(uid, processing.id, 250, 1_000)
    got = repo.get_import(uid, processing.id)
    assert got is not None and (got.processed, got.total) == (250, 1_000)
    assert replace(got, updated_at=NOW, processed=0, total=0) == processing


# --- classification input ---------------------------------------------------------------------


def test_existing_transactions_are_the_accounts_within_the_window_newest_first(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    account, elsewhere = make.account(uid), make.account(uid)
    inside = [
        make.stored(uid, account, -100, date(2024, 1, 10), fitid="A"),
        make.stored(uid, account, 200, date(2024, 1, 12), description="Salary"),
        make.stored(uid, account, -300, date(2024, 1, 15)),  # on the last day
        make.stored(uid, account, -400, date(2024, 1, 5)),  # on the first day
    ]
    make.stored(uid, account, -1, date(2024, 1, 4))
    make.stored(uid, account, -1, date(2024, 1, 16))
    make.stored(uid, elsewhere, -1, date(2024, 1, 10))
    theirs = make.account(other, id=account.id)  # the same account id, another user
    make.stored(other, theirs, -1, date(2024, 1, 10))

    found = list(repo.existing_transactions(uid, account.id, date(2024, 1, 5), date(2024, 1, 15)))
    assert [e.id for e in found] == [
        t.id for t in sorted(inside, key=lambda t: t.date, reverse=True)
    ]
    first = next(e for e in found if e.id == inside[0].id)
    assert (first.date, first.amount, first.fitid, first.description) == (
        date(2024, 1, 10),
        -100,
        "A",
        "Coffee",
    )
    assert first.statement_description is None and first.import_id is None
    assert next(e for e in found if e.id == inside[1].id).fitid is None
    assert list(repo.existing_transactions(uid, new_id(), date(2024, 1, 1), date(2024, 2, 1))) == []


def test_a_committed_transaction_keeps_its_lines_text_for_the_next_classification(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid = make.user()
    account = make.account(uid)
    line = row(1, account, description="NETFLIX.COM")
    imp = ready(repo, uid, [line])
    to(repo, uid, imp.id, S.COMMITTING)
    txn = replace(made(imp.id, line, account), description="Streaming")
    repo.write_commit(uid, imp.id, [(replace(line, transaction_id=txn.id), txn)], [])
    [seen] = repo.existing_transactions(uid, account.id, date(2024, 1, 1), date(2024, 1, 31))
    assert (seen.id, seen.description) == (txn.id, "Streaming")
    assert (seen.statement_description, seen.import_id) == ("NETFLIX.COM", imp.id)


# --- rows -------------------------------------------------------------------------------------


def test_staged_rows_land_when_the_writer_closes_and_list_in_id_order(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    account = make.account(uid)
    imp = record(status=S.PROCESSING)
    repo.create_import(uid, imp)
    rows = [
        row(3, account),
        row(1, account, classification=Classification.DUPLICATE, include=False, reason="dup"),
        row(2, account, classification=Classification.CONFLICT, include=False),
        StagedRow(row_id(1, 1), 1, 1, 40, Classification.ERROR, False, reason="bad date"),
    ]
    writer = repo.row_writer(uid, imp.id)
    for r in rows:
        writer.add(r)
    writer.close()
    assert writer.written == 4
    listed = repo.list_rows(uid, imp.id, None, 10, None)
    assert listed.items == sorted(rows, key=lambda r: r.id) and listed.next_cursor is None
    only = repo.list_rows(uid, imp.id, Classification.CONFLICT, 10, None).items
    assert [r.id for r in only] == [row_id(0, 2)]

    # Pages follow the cursor.
    first = repo.list_rows(uid, imp.id, None, 3, None)
    assert [r.id for r in first.items] == [row_id(0, 1), row_id(0, 2), row_id(0, 3)]
    assert first.next_cursor is not None
    rest = repo.list_rows(uid, imp.id, None, 3, first.next_cursor)
    assert [r.id for r in rest.items] == [row_id(1, 1)] and rest.next_cursor is None
    with pytest.raises(ValidationFailed):
        repo.list_rows(uid, imp.id, None, 3, encode_cursor("not-a-row"))

    # A re-run stages the same ids again: each row replaced whole.
    again = repo.row_writer(uid, imp.id)
    again.add(replace(rows[0], description=None, fitid=None))
    again.close()
    assert repo.list_rows(uid, imp.id, None, 10, None).items[2] == replace(
        rows[0], description=None, fitid=None
    )
    # A writer given up (closed without flushing) leaves its pending rows out.
    dropped = repo.row_writer(uid, imp.id)
    dropped.add(row(9, account))
    dropped.close(flush=False)
    assert row_id(0, 9) not in {r.id for r in repo.list_rows(uid, imp.id, None, 10, None).items}

    assert repo.list_rows(other, imp.id, None, 10, None).items == []
    assert repo.list_rows(uid, new_id(), None, 10, None).items == []


def test_a_row_is_reviewed_against_its_import(services: Services, make: Make) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    account = make.account(uid)
    target = row(1, account, classification=Classification.CONFLICT, include=False)
    imp = ready(repo, uid, [target, row(2, account)])
    seen: list[tuple[Import, StagedRow]] = []

    def include(current_import: Import, current: StagedRow) -> StagedRow:
        seen.append((current_import, current))
        return replace(current, include=True)

    changed = repo.update_row(uid, imp.id, target.id, include)
    assert changed == replace(target, include=True)
    assert seen == [(imp, target)]
    assert repo.list_rows(uid, imp.id, None, 10, None).items[0] == changed

    def closed(current_import: Import, current: StagedRow) -> StagedRow:
        raise Conflict(f"the import is {current_import.status.value}")

    with pytest.raises(Conflict):
        repo.update_row(uid, imp.id, target.id, closed)
    assert repo.list_rows(uid, imp.id, None, 10, None).items[0] == changed

    for owner, import_id, row_name in (
        (uid, new_id(), target.id),  # no such import
        (other, imp.id, target.id),  # another user's
        (uid, imp.id, row_id(0, 99)),  # no such row
        (uid, imp.id, "../x"),  # not a row id
    ):
        with pytest.raises(NotFound):
            repo.update_row(owner, import_id, row_name, include)


# --- commit and revert: chunks, writes, settling ----------------------------------------------


def test_chunks_go_through_the_included_or_the_committed_rows_in_id_order(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    account = make.account(uid)
    rows = [row(n, account, include=n % 3 != 0) for n in range(1, 12)]
    imp = ready(repo, uid, list(reversed(rows)))
    included = [r.id for r in rows if r.include]
    seen: list[str] = []
    after: str | None = None
    while chunk := repo.chunk(uid, imp.id, S.COMMITTING, after, 3):
        assert len(chunk) <= 3
        seen += [r.id for r in chunk]
        after = chunk[-1].id
    assert seen == included
    assert repo.chunk(uid, imp.id, S.COMMITTING, included[3], 100) == [
        r for r in rows if r.include and r.id > included[3]
    ]
    assert repo.chunk(uid, imp.id, S.REVERTING, None, 100) == []  # nothing committed yet
    assert repo.chunk(other, imp.id, S.COMMITTING, None, 100) == []
    assert repo.chunk(uid, new_id(), S.COMMITTING, None, 100) == []


def test_pending_and_committed_amounts_are_credits_and_debits_per_account(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid, other = make.user(), make.user()
    a, b = make.account(uid), make.account(uid)
    rows = [
        row(1, a, amount=500),
        row(2, a, amount=-200),
        row(3, a, amount=-50, include=False),  # left out
        row(4, b, amount=-700),
        StagedRow(row_id(0, 5), 0, 5, 5, Classification.ERROR, False, reason="bad"),
    ]
    imp = ready(repo, uid, rows)
    assert repo.pending_amounts(uid, imp.id) == {a.id: (500, 200), b.id: (0, 700)}
    assert repo.committed_amounts(uid, imp.id) == {}
    to(repo, uid, imp.id, S.COMMITTING)
    first = pairs(imp.id, rows[:1], a)
    repo.write_commit(uid, imp.id, first, [])
    # A committed row is no longer pending; its transaction counts as committed.
    assert repo.pending_amounts(uid, imp.id) == {a.id: (0, 200), b.id: (0, 700)}
    assert repo.committed_amounts(uid, imp.id) == {a.id: (500, 0)}
    assert repo.pending_amounts(other, imp.id) == {} == repo.committed_amounts(other, imp.id)
    assert repo.pending_amounts(uid, new_id()) == {} == repo.committed_amounts(uid, new_id())


def test_a_commit_writes_then_settles_each_chunk_once_at_the_cursor(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid = make.user()
    account = make.account(uid, opening_balance=10_000, balance=10_000)
    rows = [row(n, account) for n in range(1, 6)]
    imp = ready(repo, uid, rows)
    committing = to(repo, uid, imp.id, S.COMMITTING)

    chunk = repo.chunk(uid, imp.id, S.COMMITTING, None, 3)
    created = pairs(imp.id, chunk, account)
    skipped = [replace(rows[3], include=False, reason="its account was deleted meanwhile")]
    repo.write_commit(uid, imp.id, created, skipped)
    # Written, not settled: the transactions exist, the balances have not moved.
    txns = [t for _, t in created]
    assert repo.get_transactions(uid, [t.id for t in txns] + [new_id()]) == {t.id: t for t in txns}
    stored = services.account_store.get_account(uid, account.id)
    assert stored is not None and stored.balance == 10_000
    marked = repo.list_rows(uid, imp.id, None, 10, None).items
    assert [(r.committed, r.transaction_id) for r in marked[:3]] == [(True, t.id) for t in txns]
    assert marked[3] == skipped[0] and not marked[3].pending
    # The same rows written again (another run got there first): refused.
    with pytest.raises(RowsChanged):
        repo.write_commit(uid, imp.id, created[:1], [])

    changes = [(None, t) for t in txns]
    settled = repo.settle(uid, imp.id, S.COMMITTING, None, chunk[-1].id, changes)
    assert settled is not None
    assert (settled.cursor, settled.committed, settled.status) == (chunk[-1].id, 3, S.COMMITTING)
    assert replace(settled, cursor=None, committed=0) == committing
    # Settled once: a racing run with the old cursor (or a wrong status) writes nothing.
    assert repo.settle(uid, imp.id, S.COMMITTING, None, chunk[-1].id, changes) is None
    assert repo.settle(uid, imp.id, S.REVERTING, chunk[-1].id, chunk[-1].id, changes) is None
    assert repo.settle(uid, new_id(), S.COMMITTING, None, chunk[-1].id, changes) is None
    stored = services.account_store.get_account(uid, account.id)
    assert stored is not None
    assert stored.balance == 10_000 + sum(t.amount for t in txns)
    assert stored.transaction_count == 3
    consistent(services, uid)

    # The next chunk starts after the cursor: the skipped row is no longer included.
    got = repo.get_import(uid, imp.id)
    assert got is not None and got.cursor == chunk[-1].id and got.committed == 3
    assert repo.chunk(uid, imp.id, S.COMMITTING, got.cursor, 3) == [rows[4]]
    done = commit_chunks(repo, uid, got, account, 3)
    assert (done.committed, done.cursor) == (4, rows[4].id)
    consistent(services, uid)


def test_a_run_killed_before_settling_resumes_from_the_cursor(
    services: Services, make: Make
) -> None:
    repo = services.import_store
    uid = make.user()
    account = make.account(uid)
    rows = [row(n, account) for n in range(1, 8)]
    imp = ready(repo, uid, rows)
    committing = to(repo, uid, imp.id, S.COMMITTING)
    # The first run writes its first chunk and dies before the settle.
    chunk = repo.chunk(uid, imp.id, S.COMMITTING, None, 4)
    repo.write_commit(uid, imp.id, pairs(imp.id, chunk, account), [])
    got = repo.get_import(uid, imp.id)
    assert got == committing  # the cursor did not move
    # The next run reads the same chunk again: its rows say they are committed.
    again = repo.chunk(uid, imp.id, S.COMMITTING, got.cursor, 4)
    assert [r.id for r in again] == [r.id for r in chunk] and all(r.committed for r in again)
    stored = repo.get_transactions(uid, [r.transaction_id or "" for r in again])
    assert len(stored) == 4
    settled = repo.settle(
        uid,
        imp.id,
        S.COMMITTING,
        None,
        again[-1].id,
        [(None, stored[r.transaction_id or ""]) for r in again],
    )
    assert settled is not None
    done = commit_chunks(repo, uid, settled, account, 4)
    assert done.committed == 7
    assert repo.committed_amounts(uid, imp.id) == {
        account.id: (0, sum(-r.amount for r in rows if r.amount))
    }
    consistent(services, uid)


def test_a_revert_deletes_as_read_and_settles_at_the_cursor(services: Services, make: Make) -> None:
    repo = services.import_store
    uid = make.user()
    account = make.account(uid, opening_balance=5_000, balance=5_000)
    rows = [row(n, account) for n in range(1, 6)]
    imp = ready(repo, uid, rows)
    commit_chunks(repo, uid, to(repo, uid, imp.id, S.COMMITTING), account, 10)
    _, committed = repo.transition(uid, imp.id, lambda r: replace(r, status=S.COMMITTED))
    assert committed is not None
    # The owner deletes one of the import's transactions (through the ledger) before the revert.
    owner_deleted = transaction_id(imp.id, rows[0].id)
    services.ledger.delete_transaction(uid, owner_deleted)
    reverting = to(repo, uid, imp.id, S.REVERTING)

    before = services.account_store.get_account(uid, account.id)
    assert before is not None and before.transaction_count == 4
    chunk = repo.chunk(uid, imp.id, S.REVERTING, None, 3)
    assert [r.id for r in chunk] == [r.id for r in rows[:3]]
    deleted = repo.write_revert(uid, imp.id, chunk)
    assert sorted(t.id for t in deleted) == sorted(transaction_id(imp.id, r.id) for r in rows[1:3])
    assert repo.get_transactions(uid, [t.id for t in deleted]) == {}
    marked = repo.chunk(uid, imp.id, S.REVERTING, None, 3)
    assert marked[0].reverted_as is None  # gone before the revert: nothing to take away
    by_id = {t.id: t for t in deleted}
    assert [r.reverted_as for r in marked[1:]] == [
        by_id[r.transaction_id or ""] for r in marked[1:]
    ]
    # Written, not settled: the balance has not moved back.
    assert services.account_store.get_account(uid, account.id) == before
    # Another run reading the same chunk finds them gone and marked: it must read again.
    with pytest.raises(RowsChanged):
        repo.write_revert(uid, imp.id, chunk)

    changes = [(t, None) for t in deleted]
    settled = repo.settle(uid, imp.id, S.REVERTING, reverting.cursor, chunk[-1].id, changes)
    assert settled is not None and (settled.reverted, settled.cursor) == (2, chunk[-1].id)
    assert repo.settle(uid, imp.id, S.REVERTING, reverting.cursor, chunk[-1].id, changes) is None
    after = services.account_store.get_account(uid, account.id)
    assert after is not None and after.balance == before.balance - sum(t.amount for t in deleted)
    rest = repo.chunk(uid, imp.id, S.REVERTING, settled.cursor, 10)
    gone = repo.write_revert(uid, imp.id, rest)
    last = repo.settle(
        uid, imp.id, S.REVERTING, settled.cursor, rest[-1].id, [(t, None) for t in gone]
    )
    assert last is not None and last.reverted == 4
    assert repo.committed_amounts(uid, imp.id) == {}
    final = services.account_store.get_account(uid, account.id)
    assert final is not None and final.balance == 5_000 and final.transaction_count == 0
    consistent(services, uid)


def test_settling_skips_an_account_deleted_meanwhile(services: Services, make: Make) -> None:
    repo = services.import_store
    uid = make.user()
    kept, dropped = make.account(uid), make.account(uid)
    rows = [row(1, kept), row(2, dropped)]
    imp = ready(repo, uid, rows)
    to(repo, uid, imp.id, S.COMMITTING)
    created = pairs(imp.id, rows[:1], kept) + pairs(imp.id, rows[1:], dropped)
    repo.write_commit(uid, imp.id, created, [])
    delete_all(services, uid, dropped.id)
    settled = repo.settle(
        uid, imp.id, S.COMMITTING, None, rows[-1].id, [(None, t) for _, t in created]
    )
    assert settled is not None and settled.committed == 2
    assert services.account_store.get_account(uid, dropped.id) is None
    account = services.account_store.get_account(uid, kept.id)
    assert account is not None and account.balance == rows[0].amount
