"""Import persistence on Cloud Firestore (the ImportRepository port, service/ports/imports.py).

Layout:

    users/{uid}/imports/{id}              the import: status, counts, progress, statements
    users/{uid}/imports/{id}/rows/{row}   one staged line; row = "<statement>-<ordinal>"

Writes that touch the ledger stage it through firestore/ledger_batch.py like every ledger
write, so an imported transaction is stored exactly like a manual one (plus
`statement_description`, the line's text before rules renamed it, used to spot duplicates).

Queries (no composite index beyond the ledger's own is needed):

* the classification window: transactions where account_id == A and date in [lo, hi],
  ordered by date descending, fields selected: served by the (account_id, date desc,
  __name__ desc) index the transaction list already has;
* rows by classification / pending, ordered by document id: equality only (automatic
  single-field indexes);
* an import's transactions: import_id == X (automatic single-field index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.query import Query

from valorize.adapters.firestore.batches import (
    MAX_WRITES,
    Batches,
    collection_prefix,
    create_write,
    delete_write,
    groups,
    set_write,
    stream,
    update_write,
)
from valorize.adapters.firestore.contention import Stale, commit, optimistic, unchanged, verify
from valorize.adapters.firestore.documents import TXN_FIELDS, txn_doc, txn_of
from valorize.adapters.firestore.import_documents import import_doc, import_of, row_doc, row_of
from valorize.adapters.firestore.ledger_batch import LedgerBatch
from valorize.domain import ids
from valorize.domain.errors import NotFound
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
from valorize.service.ports.imports import RowsChanged

ROW_BATCH = 500
# Staging batches in flight at once (the writes wait on the network, not on the CPU).
WRITERS = 4


# --- the staging writer -----------------------------------------------------------------------


class BatchedRowWriter:
    """Rows in batches of `batch_size`, up to `concurrency` batches in flight: the producer
    (the parser) blocks when they are all busy, so memory stays at a few batches."""

    def __init__(
        self,
        db: firestore.Client,
        rows: firestore.CollectionReference,
        batch_size: int = ROW_BATCH,
        concurrency: int = WRITERS,
    ) -> None:
        self.batch_size = batch_size
        self._batches = Batches(db, concurrency)
        self._pending: list[StagedRow] = []
        self._prefix = collection_prefix(rows)

    @property
    def written(self) -> int:
        return self._batches.written

    def add(self, row: StagedRow) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.batch_size:
            self._submit()

    def _submit(self) -> None:
        rows, self._pending = self._pending, []
        self._batches.submit([set_write(self._prefix + row.id, row_doc(row)) for row in rows])

    def close(self, flush: bool = True) -> None:
        if self._pending and flush:
            try:
                self._submit()
            except BaseException:
                self._batches.close()
                raise
        self._pending = []
        self._batches.close()


# --- the repository ---------------------------------------------------------------------------


class FirestoreImports:
    def __init__(self, client: firestore.Client, writers: int = WRITERS) -> None:
        self.db = client
        self.writers = writers

    def _imports(self, user_id: str) -> firestore.CollectionReference:
        col: firestore.CollectionReference = (
            self.db.collection("users").document(user_id).collection("imports")
        )
        return col

    def _rows(self, user_id: str, import_id: str) -> firestore.CollectionReference:
        col: firestore.CollectionReference = (
            self._imports(user_id).document(import_id).collection("rows")
        )
        return col

    def _txns(self, user_id: str) -> firestore.CollectionReference:
        col: firestore.CollectionReference = (
            self.db.collection("users").document(user_id).collection("transactions")
        )
        return col

    # --- the import document ------------------------------------------------------------------

    def create_import(self, user_id: str, record: Import) -> Import | None:
        ref = self._imports(user_id).document(record.id)
        try:
            ref.create(import_doc(record))
        except gexc.AlreadyExists:
            return self.get_import(user_id, record.id)
        return None

    def get_import(self, user_id: str, import_id: str) -> Import | None:
        if not ids.IMPORT.matches(import_id):
            return None
        snap = self._imports(user_id).document(import_id).get()
        return import_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def list_imports(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Import]:
        col = self._imports(user_id)
        # Newest first; ids derived from an Idempotency-Key are not time-ordered, so the
        # order is created_at (then id), and the cursor is the last import's id.
        q: Query = col.order_by("created_at", direction=firestore.Query.DESCENDING).order_by(
            FieldPath.document_id(), direction=firestore.Query.DESCENDING
        )
        if cursor:
            last = col.document(decode_cursor(cursor, ids.IMPORT)).get()
            if not last.exists:
                from valorize.domain.errors import ValidationFailed

                raise ValidationFailed.on("cursor", "not a cursor this API returned")
            q = q.start_after(last)
        snaps = list(q.limit(limit + 1).stream())
        items = [import_of(s.id, s.to_dict() or {}) for s in snaps[:limit]]
        nxt = encode_cursor(items[-1].id) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def transition(
        self, user_id: str, import_id: str, decide: Callable[[Import], Import | None]
    ) -> tuple[Import | None, Import | None]:
        if not ids.IMPORT.matches(import_id):
            return None, None
        ref = self._imports(user_id).document(import_id)

        def attempt() -> tuple[Import | None, Import | None]:
            snap = ref.get()
            if not snap.exists:
                return None, None
            before = import_of(snap.id, snap.to_dict() or {})
            after = decide(before)
            if after is not None:
                batch = self.db.batch()
                batch.update(ref, import_doc(after), option=unchanged(snap))
                commit(batch)
            return before, after

        return optimistic(attempt)

    def save_progress(self, user_id: str, import_id: str, processed: int, total: int) -> None:
        self._imports(user_id).document(import_id).update(
            {"progress": {"processed": processed, "total": total}, "updated_at": _now()}
        )

    # --- classification input -----------------------------------------------------------------

    def existing_transactions(
        self, user_id: str, account_id: str, first: date, last: date
    ) -> Iterator[ExistingTransaction]:
        q = (
            self._txns(user_id)
            .where(filter=FieldFilter("account_id", "==", account_id))
            .where(filter=FieldFilter("date", ">=", first.isoformat()))
            .where(filter=FieldFilter("date", "<=", last.isoformat()))
            .order_by("date", direction=firestore.Query.DESCENDING)
            .select(
                ["fitid", "amount", "date", "description", "statement_description", "import_id"]
            )
        )
        for snap in q.stream():
            d = snap.to_dict() or {}
            yield ExistingTransaction(
                id=snap.id,
                date=date.fromisoformat(d["date"]),
                amount=d["amount"],
                fitid=d.get("fitid") or None,
                description=d.get("description") or "",
                statement_description=d.get("statement_description"),
                import_id=d.get("import_id"),
            )

    # --- rows ---------------------------------------------------------------------------------

    def row_writer(self, user_id: str, import_id: str) -> BatchedRowWriter:
        return BatchedRowWriter(self.db, self._rows(user_id, import_id), concurrency=self.writers)

    def list_rows(
        self,
        user_id: str,
        import_id: str,
        classification: Classification | None,
        limit: int,
        cursor: str | None,
    ) -> PageResult[StagedRow]:
        col = self._rows(user_id, import_id)
        q: Query = col.order_by(FieldPath.document_id())
        if classification is not None:
            q = q.where(filter=FieldFilter("classification", "==", classification.value))
        if cursor:
            q = q.start_after(
                {FieldPath.document_id(): col.document(decode_cursor(cursor, ids.ROW))}
            )
        snaps = list(q.limit(limit + 1).stream())
        items = [row_of(s.id, s.to_dict() or {}) for s in snaps[:limit]]
        nxt = encode_cursor(items[-1].id) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def update_row(
        self,
        user_id: str,
        import_id: str,
        row: str,
        mutate: Callable[[Import, StagedRow], StagedRow],
    ) -> StagedRow:
        if not ids.ROW.matches(row):
            raise NotFound("row not found")
        import_ref = self._imports(user_id).document(import_id)
        row_ref = self._rows(user_id, import_id).document(row)

        def attempt() -> StagedRow:
            got = {s.reference.path: s for s in self.db.get_all([import_ref, row_ref])}
            import_snap, row_snap = got[import_ref.path], got[row_ref.path]
            if not import_snap.exists:
                raise NotFound("import not found")
            if not row_snap.exists:
                raise NotFound("row not found")
            record = import_of(import_snap.id, import_snap.to_dict() or {})
            current = row_of(row_snap.id, row_snap.to_dict() or {})
            new = mutate(record, current)
            if new != current:
                batch = self.db.batch()
                batch.update(row_ref, row_doc(new), option=unchanged(row_snap))
                # The review is only open while the import is ready: a commit that started
                # after this read makes the batch fail (the import itself stays untouched).
                verify(batch, import_snap, "status")
                commit(batch)
            return new

        return optimistic(attempt)

    def chunk(
        self, user_id: str, import_id: str, status: ImportStatus, after: str | None, limit: int
    ) -> list[StagedRow]:
        # Equality on one field, ordered by id: served by the automatic single-field indexes.
        field = "include" if status is ImportStatus.COMMITTING else "committed"
        col = self._rows(user_id, import_id)
        q: Query = col.where(filter=FieldFilter(field, "==", True)).order_by(
            FieldPath.document_id()
        )
        if after:
            q = q.start_after({FieldPath.document_id(): col.document(after)})
        return [row_of(doc_id, d) for doc_id, d in stream(self.db, q.limit(limit))]

    def pending_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        q = (
            self._rows(user_id, import_id)
            .where(filter=FieldFilter("pending", "==", True))
            .select(["account_id", "amount"])
        )
        return _credits_and_debits(d for _, d in stream(self.db, q))

    def committed_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        q = (
            self._txns(user_id)
            .where(filter=FieldFilter("import_id", "==", import_id))
            .select(["account_id", "amount"])
        )
        return _credits_and_debits(d for _, d in stream(self.db, q))

    # --- ledger writes ------------------------------------------------------------------------

    def get_transactions(
        self, user_id: str, transaction_ids: Sequence[str]
    ) -> dict[str, Transaction]:
        refs = [self._txns(user_id).document(i) for i in transaction_ids]
        return {
            snap.id: txn_of(snap.id, snap.to_dict() or {})
            for snap in self.db.get_all(refs, TXN_FIELDS)
            if snap.exists
        }

    def write_commit(
        self,
        user_id: str,
        import_id: str,
        created: Sequence[tuple[StagedRow, Transaction]],
        skipped: Sequence[StagedRow],
    ) -> None:
        txns = collection_prefix(self._txns(user_id))
        rows = collection_prefix(self._rows(user_id, import_id))

        def writes() -> Iterator[list[Any]]:
            for group in groups(created, MAX_WRITES // 2):
                out = []
                for row, txn in group:
                    # create: fails the batch if another run committed this row first.
                    doc = {**txn_doc(txn), "statement_description": row.description}
                    out.append(create_write(txns + txn.id, doc))
                    out.append(
                        update_write(
                            rows + row.id,
                            {"committed": True, "pending": False, "transaction_id": txn.id},
                        )
                    )
                yield out
            for extra in groups(skipped, MAX_WRITES):
                yield [set_write(rows + row.id, row_doc(row)) for row in extra]

        self._run(writes())

    def write_revert(
        self, user_id: str, import_id: str, rows: Sequence[StagedRow]
    ) -> list[Transaction]:
        col = self._txns(user_id)
        prefix = collection_prefix(self._rows(user_id, import_id))
        row_of = {row.transaction_id: row.id for row in rows if row.transaction_id}
        snaps = list(self.db.get_all([col.document(i) for i in row_of], TXN_FIELDS))
        found = [
            (row_of[snap.id], snap, txn_of(snap.id, snap.to_dict() or {}))
            for snap in snaps
            if snap.exists
        ]
        gone = [row_of[snap.id] for snap in snaps if not snap.exists]
        if gone:
            # Deleted by its owner (who took it out of the models), or by another revert run
            # since these rows were read: that one marked its row in the same batch, and its
            # chunk must be read again (else this run could settle it as moving nothing).
            rows_col = self._rows(user_id, import_id)
            if any(
                (s.to_dict() or {}).get("reverted_as")
                for s in self.db.get_all([rows_col.document(r) for r in gone])
            ):
                raise RowsChanged("another revert run deleted some of these transactions")

        def writes() -> Iterator[list[Any]]:
            for group in groups(found, MAX_WRITES // 2):
                out = []
                for row_id, snap, txn in group:
                    # As read: an edit since fails the batch, and the chunk is read again.
                    out.append(delete_write(snap.reference._document_path, snap.update_time))
                    out.append(update_write(prefix + row_id, {"reverted_as": txn_doc(txn)}))
                yield out

        self._run(writes())
        return [txn for _, _, txn in found]

    def _run(self, batches: Iterable[list[Any]]) -> None:
        try:
            with Batches(self.db, self.writers) as runner:
                for writes in batches:
                    runner.submit(writes)
        except (gexc.AlreadyExists, gexc.NotFound, gexc.FailedPrecondition, gexc.Aborted) as error:
            raise RowsChanged(str(error)) from error

    def settle(
        self,
        user_id: str,
        import_id: str,
        status: ImportStatus,
        after: str | None,
        last: str,
        changes: Sequence[tuple[Transaction | None, Transaction | None]],
    ) -> Import | None:
        ref = self._imports(user_id).document(import_id)
        accounts = self.db.collection("users").document(user_id).collection("accounts")
        touched = sorted({t.account_id for pair in changes for t in pair if t is not None})
        counter = "committed" if status is ImportStatus.COMMITTING else "reverted"

        def attempt() -> Import | None:
            snaps = list(self.db.get_all([ref, *(accounts.document(a) for a in touched)]))
            [import_snap] = [s for s in snaps if s.reference.path == ref.path]
            if not import_snap.exists:
                return None
            record = import_of(import_snap.id, import_snap.to_dict() or {})
            if record.status is not status or record.cursor != after:
                return None  # another run settled this chunk (or the import moved on)
            gone = {s.id for s in snaps if s.reference.path != ref.path and not s.exists}
            ledger = LedgerBatch(self.db, user_id)
            for old, new in changes:
                ledger.account_for(old, new)
            # An account deleted meanwhile keeps no balance; its transactions went with it.
            batch = ledger.stage(without=gone)
            settled = replace(
                record, cursor=last, **{counter: getattr(record, counter) + len(changes)}
            )
            batch.update(
                ref,
                {"cursor": last, counter: getattr(settled, counter), "updated_at": _now()},
                option=unchanged(import_snap),
            )
            try:
                commit(batch)
            except gexc.NotFound as error:  # an account went after the read
                raise Stale(str(error)) from error
            return settled

        return optimistic(attempt)


def _credits_and_debits(docs: Iterable[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for d in docs:
        amount, account_id = d.get("amount"), d.get("account_id")
        if not isinstance(amount, int) or not account_id:
            continue
        credits, debits = out.get(account_id, (0, 0))
        out[account_id] = (credits + max(amount, 0), debits + max(-amount, 0))
    return out


def _now() -> datetime:
    return datetime.now(UTC)
