"""The Ledger port: transactions, with their balances and read models (ledger_batch.py).

users/{uid}/transactions/{id}   sort_key = "<date>#<id>" orders lists, newest first
users/{uid}/months/{YYYY-MM}    the month's read model: currencies: {...}
users/{uid}/totals/all          the all-time read model
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.query import Query

from valorize.adapters.firestore import ledger_batch
from valorize.adapters.firestore.base import FirestoreAdapter
from valorize.adapters.firestore.contention import commit
from valorize.adapters.firestore.documents import (
    MAGNITUDE,
    SEARCH_TOKENS,
    TXN_FIELDS,
    account_of,
    txn_of,
)
from valorize.adapters.firestore.idempotency import commit_with_record
from valorize.adapters.firestore.ledger_batch import LedgerBatch
from valorize.domain import ids
from valorize.domain.errors import NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.limits import LedgerReach, check
from valorize.domain.model import Account, Transaction
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.ledger import (
    SCAN_LIMIT,
    CreateInputs,
    Pair,
    TransactionFilter,
    filtered_page,
)
from valorize.service.ports.pages import PageResult


def list_query(
    transactions: firestore.CollectionReference, flt: TransactionFilter, position: str | None
) -> Query:
    """The indexed part of a list (`flt` but its check()), newest first, after `position` (a
    sort_key): every shape it can take has its composite index in infra/cdktf/config.py
    (tests/infra/test_indexes.py builds them all)."""
    q: Query = transactions.order_by("sort_key", direction=firestore.Query.DESCENDING)
    for name, value in (
        ("account_id", flt.account_id),
        ("type", flt.type),
        ("import_id", flt.import_id),
    ):
        if value is not None:
            q = q.where(filter=FieldFilter(name, "==", value))
    # One array-contains per query: the text's tokens carry the category when both are asked.
    if flt.text is not None and flt.text.indexed:
        wanted = flt.text.tokens(flt.category_id)
        q = q.where(filter=FieldFilter(SEARCH_TOKENS, "array_contains_any", wanted))
    elif flt.category_id is not None:
        q = q.where(filter=FieldFilter("category_ids", "array_contains", flt.category_id))
    if flt.min_magnitude is not None:
        q = q.where(filter=FieldFilter(MAGNITUDE, ">=", flt.min_magnitude))
    if flt.max_magnitude is not None:
        q = q.where(filter=FieldFilter(MAGNITUDE, "<=", flt.max_magnitude))
    # The day range and the cursor are ranges on sort_key, the order: the same index serves.
    if flt.date_from is not None:
        q = q.where(filter=FieldFilter("sort_key", ">=", flt.date_from))
    if flt.date_to is not None:
        # "$" sorts right after "#", so every key of that day is included.
        q = q.where(filter=FieldFilter("sort_key", "<", flt.date_to + "$"))
    if position is not None:
        q = q.where(filter=FieldFilter("sort_key", "<", position))
    return q


class FirestoreLedger(FirestoreAdapter):
    # Transaction documents the lists have read, for benchmarks (load/scale.py): the cost
    # a page has in production, where Firestore bills each document a query returns.
    documents_read = 0

    def add_transactions(
        self,
        user_id: str,
        transactions: Sequence[Transaction],
        idem: IdempotencyRecord | None = None,
        inputs: CreateInputs | None = None,
    ) -> dict[str, int]:
        ledger = LedgerBatch(self.db, user_id)
        for t in transactions:
            ledger.create(t)
        reach = ledger.reach
        account = inputs.account if inputs is not None else None
        if inputs is not None and account is not None and set(reach.balances) <= {account.id}:
            # Read just before by read_create_inputs: no second read of the same documents.
            check(reach, {account.id: (account.name, account.balance)}, inputs.totals)
        else:
            ledger.check_limits()
        return ledger.balances(commit_with_record(self.db, ledger.stage(), user_id, idem))

    def read_create_inputs(
        self, user_id: str, account_id: str, category_ids: Sequence[str]
    ) -> CreateInputs:
        account_ref = self._col(user_id, "accounts").document(account_id)
        totals_ref = self._col(user_id, "totals").document("all")
        categories = self._col(user_id, "categories")
        refs = [account_ref, totals_ref, *(categories.document(c) for c in category_ids)]
        account: Account | None = None
        found: set[str] = set()
        totals: dict[str, Any] = {}
        # One BatchGetDocuments for what three reads fetched (account, categories, totals).
        for snap in self.db.get_all(refs):
            if not snap.exists:
                continue
            d = snap.to_dict() or {}
            path = snap.reference.path
            if path == account_ref.path:
                account = None if d.get("deleting") else account_of(snap.id, d)
            elif path == totals_ref.path:
                totals = dict(d.get("currencies", {}))
            else:
                found.add(snap.id)
        return CreateInputs(account, frozenset(found), totals)

    def get_transaction(self, user_id: str, transaction_id: str) -> Transaction | None:
        snap = self._col(user_id, "transactions").document(transaction_id).get(TXN_FIELDS)
        return txn_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def update_transaction(
        self,
        user_id: str,
        transaction_id: str,
        mutate: Callable[[Transaction, Transaction | None], Pair],
    ) -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
        txns = self._col(user_id, "transactions")

        def attempt() -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
            snap = txns.document(transaction_id).get(TXN_FIELDS)
            if not snap.exists:
                raise NotFound("transaction not found")
            old = txn_of(snap.id, snap.to_dict() or {})
            old_cp: Transaction | None = None
            cp_snap = None
            if old.counterpart_id:
                cp_snap = txns.document(old.counterpart_id).get(TXN_FIELDS)
                old_cp = txn_of(cp_snap.id, cp_snap.to_dict() or {}) if cp_snap.exists else None
            new, new_cp = mutate(old, old_cp)
            ledger = LedgerBatch(self.db, user_id)
            ledger.replace(snap, old, new)
            if cp_snap is not None and old_cp is not None and new_cp is not None:
                ledger.replace(cp_snap, old_cp, new_cp)
            ledger.check_limits()
            self._commit_attempt(ledger.stage())
            return old, new, old_cp, new_cp

        return self._optimistic(attempt)

    @staticmethod
    def _commit_attempt(batch: firestore.WriteBatch) -> None:
        try:
            commit(batch)
        except gexc.NotFound:
            raise NotFound("the transaction's account no longer exists") from None

    def delete_transaction(self, user_id: str, transaction_id: str) -> list[Transaction]:
        txns = self._col(user_id, "transactions")

        def attempt() -> list[Transaction]:
            snap = txns.document(transaction_id).get(TXN_FIELDS)
            if not snap.exists:
                raise NotFound("transaction not found")
            victims = [(snap, txn_of(snap.id, snap.to_dict() or {}))]
            # Deleting one side of a transfer deletes both.
            if victims[0][1].counterpart_id:
                cp = txns.document(victims[0][1].counterpart_id).get(TXN_FIELDS)
                if cp.exists:
                    victims.append((cp, txn_of(cp.id, cp.to_dict() or {})))
            ledger = LedgerBatch(self.db, user_id)
            for victim, t in victims:
                ledger.delete(victim, t)
            ledger.check_limits()
            self._commit_attempt(ledger.stage())
            return [t for _, t in victims]

        return self._optimistic(attempt)

    def list_transactions(
        self, user_id: str, flt: TransactionFilter, limit: int, cursor: str | None
    ) -> PageResult[Transaction]:
        position = decode_cursor(cursor, ids.TRANSACTION_CURSOR) if cursor else None
        q = list_query(self._col(user_id, "transactions"), flt, position).select(TXN_FIELDS)
        keep = flt.check()
        if keep is None:
            page = list(self._read(q.limit(limit + 1)))
            items = page[:limit]
            return PageResult(
                items, encode_cursor(items[-1].sort_key) if len(page) > limit else None
            )
        return filtered_page(self._scan(q, limit + 1), keep, limit)

    def _read(self, q: Query) -> Iterator[Transaction]:
        for s in q.stream():
            self.documents_read += 1
            yield txn_of(s.id, s.to_dict() or {})

    def _scan(self, q: Query, chunk: int) -> Iterator[Transaction]:
        """Up to SCAN_LIMIT of the query's transactions, read in chunks that double from
        `chunk` on: a page whose check passes nearly everything reads little more than it
        returns, and one that passes little reads few chunks."""
        seen = 0
        position: str | None = None
        while seen < SCAN_LIMIT:
            size = min(chunk, SCAN_LIMIT - seen)
            page = q if position is None else q.where(filter=FieldFilter("sort_key", "<", position))
            got = 0
            for t in self._read(page.limit(size)):
                position = t.sort_key
                got += 1
                yield t
            seen += got
            if got < size:
                return
            chunk *= 2

    # --- the read models ----------------------------------------------------------------------

    def get_months(self, user_id: str, months: Sequence[str]) -> dict[str, dict[str, Any]]:
        col = self._col(user_id, "months")
        snaps = self.db.get_all([col.document(m) for m in dict.fromkeys(months)])
        return {s.id: (s.to_dict() or {}).get("currencies", {}) for s in snaps if s.exists}

    def get_totals(self, user_id: str) -> dict[str, Any]:
        snap = self._col(user_id, "totals").document("all").get()
        return dict((snap.to_dict() or {}).get("currencies", {})) if snap.exists else {}

    def get_months_from(self, user_id: str, month: str) -> dict[str, dict[str, Any]]:
        q = self._col(user_id, "months").where(filter=FieldFilter("month", ">=", month))
        return {s.id: (s.to_dict() or {}).get("currencies", {}) for s in q.stream()}

    def check_limits(self, user_id: str, reach: LedgerReach, field_name: str = "amount") -> None:
        ledger_batch.check_limits(self.db, user_id, reach, field_name)
