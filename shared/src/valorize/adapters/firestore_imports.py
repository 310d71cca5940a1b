"""Import persistence on Cloud Firestore (the ImportRepository port of service/imports.py).

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

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.query import Query
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import write as write_types

from valorize.adapters.firestore.contention import commit, optimistic, unchanged, verify
from valorize.adapters.firestore.documents import txn_of
from valorize.adapters.firestore.ledger_batch import LedgerBatch
from valorize.domain import ids
from valorize.domain.errors import NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.imports import (
    Classification,
    Counts,
    ExistingTransaction,
    Import,
    ImportStatus,
    Resolution,
    StagedRow,
    StatementSummary,
)
from valorize.domain.model import Transaction
from valorize.domain.readmodel import month_of
from valorize.service.imports import RowsChanged
from valorize.service.ports import PageResult

# Firestore's limit per batch.
MAX_WRITES = 500
ROW_BATCH = 500
# Staging batches in flight at once (the writes wait on the network, not on the CPU).
WRITERS = 4


# --- mapping ----------------------------------------------------------------------------------


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _undate(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def _import_doc(r: Import) -> dict[str, Any]:
    return {
        "status": r.status.value,
        "file_name": r.file_name,
        "object_name": r.object_name,
        "size": r.size,
        "sha256": r.sha256,
        "format": r.format,
        "preset": r.preset,
        "mapping": r.mapping,
        "currency": r.currency,
        "account_id": r.account_id,
        "account_ids": list(r.account_ids),
        "counts": r.counts.as_dict(),
        "progress": {"processed": r.processed, "total": r.total},
        "reason": r.reason,
        "statements": [
            {
                "index": s.index,
                "kind": s.kind,
                "currency": s.currency,
                "account_id": s.account_id,
                "account_created": s.account_created,
                "lines": s.lines,
                "errors": s.errors,
                "bank_id": s.bank_id,
                "account_number": s.account_number,
                "start": _day(s.start),
                "end": _day(s.end),
                "ledger_balance": s.ledger_balance,
                "preset": s.preset,
            }
            for s in r.statements
        ],
        "committed": r.committed,
        "reverted": r.reverted,
        "attempts": r.attempts,
        "requests": r.requests,
        "first_date": _day(r.first_date),
        "last_date": _day(r.last_date),
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "processed_at": r.processed_at,
        "committed_at": r.committed_at,
        "reverted_at": r.reverted_at,
    }


def _import(doc_id: str, d: dict[str, Any]) -> Import:
    progress = d.get("progress") or {}
    return Import(
        id=doc_id,
        status=ImportStatus(d["status"]),
        file_name=d["file_name"],
        object_name=d["object_name"],
        size=d["size"],
        sha256=d["sha256"],
        format=d.get("format"),
        preset=d.get("preset"),
        mapping=d.get("mapping"),
        currency=d.get("currency"),
        account_id=d.get("account_id"),
        account_ids=tuple(d.get("account_ids") or ()),
        counts=Counts(**(d.get("counts") or {})),
        processed=progress.get("processed", 0),
        total=progress.get("total", 0),
        reason=d.get("reason"),
        statements=tuple(
            StatementSummary(
                index=s["index"],
                kind=s["kind"],
                currency=s["currency"],
                account_id=s["account_id"],
                account_created=s["account_created"],
                lines=s["lines"],
                errors=s["errors"],
                bank_id=s.get("bank_id"),
                account_number=s.get("account_number"),
                start=_undate(s.get("start")),
                end=_undate(s.get("end")),
                ledger_balance=s.get("ledger_balance"),
                preset=s.get("preset"),
            )
            for s in d.get("statements") or ()
        ),
        committed=d.get("committed", 0),
        reverted=d.get("reverted", 0),
        attempts=d.get("attempts", 0),
        requests=d.get("requests", 0),
        first_date=_undate(d.get("first_date")),
        last_date=_undate(d.get("last_date")),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
        processed_at=d.get("processed_at"),
        committed_at=d.get("committed_at"),
        reverted_at=d.get("reverted_at"),
    )


def _row_doc(r: StagedRow) -> dict[str, Any]:
    """A row's document; empty optional fields are left out (half the encoding work, and a
    staged import can have tens of thousands of rows)."""
    doc = _full_row_doc(r)
    return {k: v for k, v in doc.items() if v is not None}


def _full_row_doc(r: StagedRow) -> dict[str, Any]:
    m = r.matched
    return {
        "statement": r.statement,
        "ordinal": r.ordinal,
        "line_no": r.line_no,
        "classification": r.classification.value,
        "include": r.include,
        "pending": r.pending,
        "account_id": r.account_id,
        "fitid": r.fitid,
        "date": _day(r.date),
        "amount": r.amount,
        "currency": r.currency,
        "description": r.description,
        "memo": r.memo,
        "name": r.name,
        "raw_type": r.raw_type,
        "reason": r.reason,
        "matched": None
        if m is None
        else {
            "transaction_id": m.id,
            "date": m.date.isoformat(),
            "amount": m.amount,
            "description": m.description,
            "fitid": m.fitid,
        },
        "resolution": r.resolution.value if r.resolution else None,
        "committed": r.committed,
        "transaction_id": r.transaction_id,
    }


def _row(doc_id: str, d: dict[str, Any]) -> StagedRow:
    m = d.get("matched")
    return StagedRow(
        id=doc_id,
        statement=d["statement"],
        ordinal=d["ordinal"],
        line_no=d["line_no"],
        classification=Classification(d["classification"]),
        include=d["include"],
        account_id=d.get("account_id"),
        fitid=d.get("fitid"),
        date=_undate(d.get("date")),
        amount=d.get("amount"),
        currency=d.get("currency"),
        description=d.get("description"),
        memo=d.get("memo"),
        name=d.get("name"),
        raw_type=d.get("raw_type"),
        reason=d.get("reason"),
        matched=None
        if not m
        else ExistingTransaction(
            id=m["transaction_id"],
            date=date.fromisoformat(m["date"]),
            amount=m["amount"],
            fitid=m.get("fitid"),
            description=m.get("description") or "",
        ),
        resolution=Resolution(d["resolution"]) if d.get("resolution") else None,
        committed=d.get("committed", False),
        transaction_id=d.get("transaction_id"),
    )


# --- the staging writer -----------------------------------------------------------------------

_ValuePb = document_types.Value.pb()
_MapValuePb = document_types.MapValue.pb()
_DocumentPb = document_types.Document.pb()
_WritePb = write_types.Write.pb()


def _value_pb(value: Any) -> Any:
    """A Firestore Value as a raw protobuf message. The client's generic encoder builds
    proto-plus wrappers field by field (about 1 ms per row document on our machines, more
    than the emulator takes to store it); staged rows only hold these plain types."""
    if value is None:
        return _ValuePb(null_value=0)
    if value is True or value is False:
        return _ValuePb(boolean_value=value)
    if isinstance(value, int):
        return _ValuePb(integer_value=value)
    if isinstance(value, str):
        return _ValuePb(string_value=value)
    if isinstance(value, float):
        return _ValuePb(double_value=value)
    if isinstance(value, dict):
        return _ValuePb(map_value=_MapValuePb(fields={k: _value_pb(v) for k, v in value.items()}))
    raise TypeError(f"cannot stage a {type(value).__name__}")


def set_write_pb(document_path: str, doc: dict[str, Any]) -> Any:
    """The write `batch.set(ref, doc)` would add (a full overwrite), built directly."""
    fields = {k: _value_pb(v) for k, v in doc.items()}
    return _WritePb(update=_DocumentPb(name=document_path, fields=fields))


def add_sets(
    batch: firestore.WriteBatch, prefix: str, docs: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    """`batch.set` for many documents of one collection (`prefix` = its path + "/")."""
    add = getattr(batch, "_add_write_pbs", None)
    if add is None:  # pragma: no cover - a client without the hook: the generic path
        for doc_id, doc in docs:
            batch.set(batch._client.document(prefix + doc_id), doc)
        return
    add([set_write_pb(prefix + doc_id, doc) for doc_id, doc in docs])


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
        self.db = db
        self.rows = rows
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="stage")
        self._inflight: deque[Future[None]] = deque()
        self._pending: list[StagedRow] = []
        self._written = 0
        self._lock = threading.Lock()
        # "projects/p/databases/(default)/documents/users/u/imports/i/rows/"
        self._prefix = rows.document("_")._document_path[:-1]

    @property
    def written(self) -> int:
        return self._written

    def add(self, row: StagedRow) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.batch_size:
            self._submit()

    def _submit(self) -> None:
        rows, self._pending = self._pending, []
        while len(self._inflight) >= self.concurrency:
            self._inflight.popleft().result()
        self._inflight.append(self._pool.submit(self._write, rows))

    def _write(self, rows: list[StagedRow]) -> None:
        batch = self.db.batch()
        add_sets(batch, self._prefix, [(row.id, _row_doc(row)) for row in rows])
        batch.commit()
        with self._lock:
            self._written += len(rows)

    def close(self, flush: bool = True) -> None:
        try:
            if self._pending and flush:
                self._submit()
            self._pending = []
            while self._inflight:
                self._inflight.popleft().result()
        finally:
            for future in self._inflight:
                future.cancel()
            self._pool.shutdown(wait=True)


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
            ref.create(_import_doc(record))
        except gexc.AlreadyExists:
            return self.get_import(user_id, record.id)
        return None

    def get_import(self, user_id: str, import_id: str) -> Import | None:
        if not ids.IMPORT.matches(import_id):
            return None
        snap = self._imports(user_id).document(import_id).get()
        return _import(snap.id, snap.to_dict() or {}) if snap.exists else None

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
        items = [_import(s.id, s.to_dict() or {}) for s in snaps[:limit]]
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
            before = _import(snap.id, snap.to_dict() or {})
            after = decide(before)
            if after is not None:
                batch = self.db.batch()
                batch.update(ref, _import_doc(after), option=unchanged(snap))
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
        items = [_row(s.id, s.to_dict() or {}) for s in snaps[:limit]]
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
            record = _import(import_snap.id, import_snap.to_dict() or {})
            current = _row(row_snap.id, row_snap.to_dict() or {})
            new = mutate(record, current)
            if new != current:
                batch = self.db.batch()
                batch.update(row_ref, _row_doc(new), option=unchanged(row_snap))
                # The review is only open while the import is ready: a commit that started
                # after this read makes the batch fail (the import itself stays untouched).
                verify(batch, import_snap, "status")
                commit(batch)
            return new

        return optimistic(attempt)

    def pending_rows(
        self, user_id: str, import_id: str, after: str | None, limit: int
    ) -> list[StagedRow]:
        col = self._rows(user_id, import_id)
        q: Query = col.where(filter=FieldFilter("pending", "==", True)).order_by(
            FieldPath.document_id()
        )
        if after:
            q = q.start_after({FieldPath.document_id(): col.document(after)})
        return [_row(s.id, s.to_dict() or {}) for s in q.limit(limit).stream()]

    def pending_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        q = (
            self._rows(user_id, import_id)
            .where(filter=FieldFilter("pending", "==", True))
            .select(["account_id", "amount"])
        )
        return _credits_and_debits(s.to_dict() or {} for s in q.stream())

    def committed_amounts(self, user_id: str, import_id: str) -> dict[str, tuple[int, int]]:
        q = (
            self._txns(user_id)
            .where(filter=FieldFilter("import_id", "==", import_id))
            .select(["account_id", "amount"])
        )
        return _credits_and_debits(s.to_dict() or {} for s in q.stream())

    # --- ledger writes ------------------------------------------------------------------------

    def commit_rows(
        self,
        user_id: str,
        import_id: str,
        created: Sequence[tuple[StagedRow, Transaction]],
        skipped: Sequence[StagedRow],
    ) -> None:
        rows = self._rows(user_id, import_id)
        import_ref = self._imports(user_id).document(import_id)
        for group, extra in _batches(created, skipped):
            ledger = LedgerBatch(self.db, user_id)
            batch = ledger.batch
            for row in extra:
                batch.set(rows.document(row.id), _row_doc(row))
            for row, txn in group:
                # create(): fails the whole batch if another run committed this row first.
                ledger.create(txn, {"statement_description": row.description})
                batch.update(
                    rows.document(row.id),
                    {"committed": True, "pending": False, "transaction_id": txn.id},
                )
            ledger.stage()
            if group:
                batch.update(import_ref, {"committed": firestore.Increment(len(group))})
            try:
                batch.commit()
            except (gexc.AlreadyExists, gexc.NotFound) as error:
                raise RowsChanged(str(error)) from error

    def delete_import_transactions(
        self, user_id: str, import_id: str, limit: int
    ) -> dict[str, int]:
        q = self._txns(user_id).where(filter=FieldFilter("import_id", "==", import_id))
        snaps = list(q.limit(limit).stream())
        if not snaps:
            return {}
        victims = [(s, txn_of(s.id, s.to_dict() or {})) for s in snaps]
        import_ref = self._imports(user_id).document(import_id)
        moved: dict[str, int] = {}
        for group, _ in _batches([(s, t) for s, t in victims], ()):
            ledger = LedgerBatch(self.db, user_id)
            for snap, txn in group:
                # Only as read: a concurrent revert that deleted it first fails this batch.
                ledger.delete(snap, txn)
                moved[txn.account_id] = moved.get(txn.account_id, 0) - txn.amount
            batch = ledger.stage()
            batch.update(import_ref, {"reverted": firestore.Increment(len(group))})
            try:
                batch.commit()
            except (gexc.FailedPrecondition, gexc.NotFound, gexc.Aborted) as error:
                raise RowsChanged(str(error)) from error
        return moved


def _credits_and_debits(docs: Iterable[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for d in docs:
        amount, account_id = d.get("amount"), d.get("account_id")
        if not isinstance(amount, int) or not account_id:
            continue
        credits, debits = out.get(account_id, (0, 0))
        out[account_id] = (credits + max(amount, 0), debits + max(-amount, 0))
    return out


def _batches(
    items: Sequence[tuple[Any, Transaction]], extra: Sequence[StagedRow]
) -> Iterator[tuple[list[tuple[Any, Transaction]], Sequence[StagedRow]]]:
    """Split into groups whose batch stays within Firestore's 500 writes: two writes per item
    (the transaction and its row; or one delete, counted as two to keep it simple), one per
    month and account touched, the all-time totals and the import document. The extra rows
    ride in the first batch."""
    group: list[tuple[Any, Transaction]] = []
    months: set[str] = set()
    accounts: set[str] = set()
    first_extra: Sequence[StagedRow] = extra
    fixed = 2 + len(extra)
    for item in items:
        txn = item[1]
        new_months = months | {month_of(txn)}
        new_accounts = accounts | {txn.account_id}
        if (
            group
            and 2 * (len(group) + 1) + len(new_months) + len(new_accounts) + fixed > MAX_WRITES
        ):
            yield group, first_extra
            group, months, accounts = [], set(), set()
            first_extra, fixed = (), 2
            new_months, new_accounts = {month_of(txn)}, {txn.account_id}
        group.append(item)
        months, accounts = new_months, new_accounts
    if group or first_extra:
        yield group, first_extra


def _now() -> datetime:
    return datetime.now(UTC)
