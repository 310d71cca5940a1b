"""The imports port in memory (service/ports/imports.py): the ImportRepository
(adapters/firestore/imports.py) over the shared Memory, so a commit's transactions are the
ledger fake's, and the StatementFiles (adapters/statement_files.py) as a dict of objects.

Like the adapter, a commit's or revert's transaction writes (`write_commit`, `write_revert`)
leave balances and counts alone until `settle` moves them. The fake's read models are
derived from the transactions on every read (tests/fakes/ledger.py), so they follow those
writes at once, where Firestore's move at `settle`: compare read models after a settle.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from typing import BinaryIO

from tests.fakes.memory import Memory
from valorize.domain import ids
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.imports import (
    Classification,
    ExistingTransaction,
    Import,
    ImportStatus,
    StagedRow,
)
from valorize.domain.model import Transaction
from valorize.service.ports import PageResult
from valorize.service.ports.imports import Change, RowsChanged, StatementFileMissing

# As the adapter: rows staged in batches of this many; a commit's transactions written in
# batches of this many rows (a transaction and its row's mark: 500 writes).
ROW_BATCH = 500
COMMIT_BATCH = 250


class InMemoryRowWriter:
    """Rows land a batch at a time; `close(flush=False)` drops the batch not yet sent."""

    def __init__(self, rows: dict[str, StagedRow], batch_size: int = ROW_BATCH) -> None:
        self.rows = rows
        self.batch_size = batch_size
        self.written = 0
        self._pending: list[StagedRow] = []

    def add(self, row: StagedRow) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.batch_size:
            self._land()

    def _land(self) -> None:
        batch, self._pending = self._pending, []
        for row in batch:
            self.rows[row.id] = row  # a set: a re-staged row replaces the old one whole
        self.written += len(batch)

    def close(self, flush: bool = True) -> None:
        if flush:
            self._land()
        self._pending = []


class InMemoryImports:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def _rows(self, user_id: str, import_id: str) -> dict[str, StagedRow]:
        return self.memory.space(user_id).import_rows.setdefault(import_id, {})

    # --- the import document ------------------------------------------------------------------

    def create_import(self, user_id: str, record: Import) -> Import | None:
        imports = self.memory.space(user_id).imports
        if record.id in imports:
            return imports[record.id]
        imports[record.id] = record
        self.memory.writes += 1
        return None

    def get_import(self, user_id: str, import_id: str) -> Import | None:
        if not ids.IMPORT.matches(import_id):
            return None
        return self.memory.space(user_id).imports.get(import_id)

    def list_imports(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Import]:
        imports = self.memory.space(user_id).imports
        # Newest first, then by id (descending): ids from an Idempotency-Key are not ordered.
        found = sorted(imports.values(), key=lambda r: (r.created_at, r.id), reverse=True)
        if cursor:
            last = imports.get(decode_cursor(cursor, ids.IMPORT))
            if last is None:
                raise ValidationFailed.on("cursor", "not a cursor this API returned")
            found = [r for r in found if (r.created_at, r.id) < (last.created_at, last.id)]
        page = found[: limit + 1]
        items = page[:limit]
        return PageResult(items, encode_cursor(items[-1].id) if len(page) > limit else None)

    def transition(
        self, user_id: str, import_id: str, decide: Callable[[Import], Import | None]
    ) -> tuple[Import | None, Import | None]:
        before = self.get_import(user_id, import_id)
        if before is None:
            return None, None
        after = decide(before)
        if after is not None:
            self.memory.space(user_id).imports[import_id] = after
            self.memory.writes += 1
        return before, after

    def save_progress(self, user_id: str, import_id: str, processed: int, total: int) -> None:
        imports = self.memory.space(user_id).imports
        record = imports.get(import_id)
        if record is None:  # Firestore's update of a missing document fails too
            raise NotFound("import not found")
        imports[import_id] = replace(
            record, processed=processed, total=total, updated_at=self.memory.now()
        )

    # --- classification input -----------------------------------------------------------------

    def existing_transactions(
        self, user_id: str, account_id: str, first: date, last: date
    ) -> Iterator[ExistingTransaction]:
        space = self.memory.space(user_id)
        found = sorted(
            (
                t
                for t in space.transactions.values()
                if t.account_id == account_id and first <= t.date <= last
            ),
            key=lambda t: (t.date, t.id),
            reverse=True,
        )
        for t in found:
            yield ExistingTransaction(
                id=t.id,
                date=t.date,
                amount=t.amount,
                fitid=t.fitid or None,
                description=t.description or "",
                statement_description=space.statement_descriptions.get(t.id),
                import_id=t.import_id,
            )

    # --- rows ---------------------------------------------------------------------------------

    def row_writer(self, user_id: str, import_id: str) -> InMemoryRowWriter:
        return InMemoryRowWriter(self._rows(user_id, import_id))

    def list_rows(
        self,
        user_id: str,
        import_id: str,
        classification: Classification | None,
        limit: int,
        cursor: str | None,
    ) -> PageResult[StagedRow]:
        after = decode_cursor(cursor, ids.ROW) if cursor else None
        found = [
            row
            for _, row in sorted(self._rows(user_id, import_id).items())
            if (classification is None or row.classification is classification)
            and (after is None or row.id > after)
        ]
        page = found[: limit + 1]
        items = page[:limit]
        return PageResult(items, encode_cursor(items[-1].id) if len(page) > limit else None)

    def update_row(
        self,
        user_id: str,
        import_id: str,
        row: str,
        mutate: Callable[[Import, StagedRow], StagedRow],
    ) -> StagedRow:
        if not ids.ROW.matches(row):
            raise NotFound("row not found")
        record = self.get_import(user_id, import_id)
        if record is None:
            raise NotFound("import not found")
        rows = self._rows(user_id, import_id)
        current = rows.get(row)
        if current is None:
            raise NotFound("row not found")
        new = mutate(record, current)
        if new != current:
            rows[row] = new
            self.memory.writes += 1
        return new

    def chunk(
        self, user_id: str, import_id: str, status: ImportStatus, after: str | None, limit: int
    ) -> list[StagedRow]:
        committing = status is ImportStatus.COMMITTING
        found = [
            row
            for row_id, row in sorted(self._rows(user_id, import_id).items())
            if (row.include if committing else row.committed) and (after is None or row_id > after)
        ]
        return found[:limit]

    def pending_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        rows = self._rows(user_id, import_id).values()
        return _credits_and_debits((r.account_id, r.amount) for r in rows if r.pending)

    def committed_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        txns = self.memory.space(user_id).transactions.values()
        return _credits_and_debits(
            (t.account_id, t.amount) for t in txns if t.import_id == import_id
        )

    # --- ledger writes ------------------------------------------------------------------------

    def get_transactions(
        self, user_id: str, transaction_ids: Sequence[str]
    ) -> dict[str, Transaction]:
        txns = self.memory.space(user_id).transactions
        return {i: txns[i] for i in transaction_ids if i in txns}

    def write_commit(
        self,
        user_id: str,
        import_id: str,
        created: Sequence[tuple[StagedRow, Transaction]],
        skipped: Sequence[StagedRow],
    ) -> None:
        space = self.memory.space(user_id)
        rows = self._rows(user_id, import_id)
        # Batch by batch, each all-or-nothing: a failed batch raises, those before it stay.
        for start in range(0, len(created), COMMIT_BATCH):
            batch = created[start : start + COMMIT_BATCH]
            new_ids = [txn.id for _, txn in batch]
            if len(set(new_ids)) != len(new_ids) or any(i in space.transactions for i in new_ids):
                raise RowsChanged("a transaction of these rows exists already")
            if any(row.id not in rows for row, _ in batch):
                raise RowsChanged("a row of this chunk is gone")
            for row, txn in batch:
                space.transactions[txn.id] = txn
                space.statement_descriptions[txn.id] = row.description
                rows[row.id] = replace(rows[row.id], committed=True, transaction_id=txn.id)
            self.memory.writes += 1
        for start in range(0, len(skipped), 2 * COMMIT_BATCH):
            for row in skipped[start : start + 2 * COMMIT_BATCH]:
                rows[row.id] = row
            self.memory.writes += 1

    def write_revert(
        self, user_id: str, import_id: str, rows: Sequence[StagedRow]
    ) -> list[Transaction]:
        txns = self.memory.space(user_id).transactions
        stored = self._rows(user_id, import_id)
        row_of = {row.transaction_id: row.id for row in rows if row.transaction_id}
        found = [(row_of[i], txns[i]) for i in row_of if i in txns]
        gone = [row_of[i] for i in row_of if i not in txns]
        # Gone and marked: another revert run deleted it since these rows were read.
        if any(stored[r].reverted_as for r in gone if r in stored):
            raise RowsChanged("another revert run deleted some of these transactions")
        deleted: list[Transaction] = []
        for start in range(0, len(found), COMMIT_BATCH):
            batch = found[start : start + COMMIT_BATCH]
            if any(row_id not in stored for row_id, _ in batch):
                raise RowsChanged("a row of this chunk is gone")
            for row_id, txn in batch:
                del txns[txn.id]
                stored[row_id] = replace(stored[row_id], reverted_as=txn)
                deleted.append(txn)
            self.memory.writes += 1
        return deleted

    def settle(
        self,
        user_id: str,
        import_id: str,
        status: ImportStatus,
        after: str | None,
        last: str,
        changes: Sequence[Change],
    ) -> Import | None:
        space = self.memory.space(user_id)
        record = space.imports.get(import_id)
        if record is None or record.status is not status or record.cursor != after:
            return None  # another run settled this chunk (or the import moved on)
        moved: dict[str, tuple[int, int]] = {}
        for old, new in changes:
            for txn, sign in ((old, -1), (new, 1)):
                if txn is not None:
                    amount, count = moved.get(txn.account_id, (0, 0))
                    moved[txn.account_id] = (amount + sign * txn.amount, count + sign)
        # An account deleted meanwhile keeps no balance; its transactions went with it.
        for account_id, (amount, count) in moved.items():
            account = space.accounts.get(account_id)
            if account is not None:
                space.accounts[account_id] = replace(
                    account,
                    balance=account.balance + amount,
                    transaction_count=account.transaction_count + count,
                )
        counter = "committed" if status is ImportStatus.COMMITTING else "reverted"
        settled = replace(record, cursor=last, **{counter: getattr(record, counter) + len(changes)})
        space.imports[import_id] = replace(settled, updated_at=self.memory.now())
        self.memory.writes += 1
        return settled


def _credits_and_debits(
    amounts: Iterator[tuple[str | None, int | None]],
) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for account_id, amount in amounts:
        if amount is None or not account_id:
            continue
        credits, debits = out.get(account_id, (0, 0))
        out[account_id] = (credits + max(amount, 0), debits + max(-amount, 0))
    return out


# --- statement files --------------------------------------------------------------------------


class InMemoryStatementWriter:
    def __init__(self, files: InMemoryStatementFiles, name: str, content_type: str) -> None:
        self.files = files
        self.name = name
        self.content_type = content_type
        self.chunks: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.chunks.append(bytes(data))

    def close(self) -> None:
        self.files.objects[self.name] = b"".join(self.chunks)
        self.files.content_types[self.name] = self.content_type

    def abort(self) -> None:
        self.aborted = True


class InMemoryStatementFiles:
    """Objects by name; nothing exists under a name before its writer is closed."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}
        self.writers: list[InMemoryStatementWriter] = []

    def create(self, name: str, content_type: str) -> InMemoryStatementWriter:
        writer = InMemoryStatementWriter(self, name, content_type)
        self.writers.append(writer)
        return writer

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        if name not in self.objects:
            raise StatementFileMissing(name)
        with io.BytesIO(self.objects[name]) as stream:
            yield stream

    def delete(self, name: str) -> None:
        self.objects.pop(name, None)
        self.content_types.pop(name, None)
