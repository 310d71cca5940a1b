"""The RecurrenceStore port.

users/{uid}/recurrences/{id}   the recurrence, materialized_through and next_due
                               ("YYYY-MM-DD" or null: the scheduler's collection-group
                               query, automations.py)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from valorize.adapters.firestore.base import FirestoreAdapter, by_id
from valorize.adapters.firestore.contention import Stale, commit, unchanged
from valorize.adapters.firestore.documents import recurrence_doc, recurrence_of
from valorize.adapters.firestore.idempotency import commit_with_record
from valorize.adapters.firestore.ledger_batch import LedgerBatch
from valorize.domain.automation import Materialization
from valorize.domain.errors import NotFound
from valorize.domain.ids import encode_cursor
from valorize.domain.model import Transaction
from valorize.domain.recurrence import Recurrence
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult


class FirestoreRecurrences(FirestoreAdapter):
    def _rec_ref(self, user_id: str, recurrence_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "recurrences").document(recurrence_id)
        return ref

    def add_recurrence(
        self, user_id: str, recurrence: Recurrence, idem: IdempotencyRecord | None = None
    ) -> None:
        batch = self.db.batch()
        batch.create(self._rec_ref(user_id, recurrence.id), recurrence_doc(recurrence))
        commit_with_record(self.db, batch, user_id, idem)

    def get_recurrence(self, user_id: str, recurrence_id: str) -> Recurrence | None:
        snap = self._rec_ref(user_id, recurrence_id).get()
        return recurrence_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def list_recurrences(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Recurrence]:
        snaps = list(by_id(self._col(user_id, "recurrences"), cursor).limit(limit + 1).stream())
        items = [recurrence_of(s.id, s.to_dict() or {}) for s in snaps[:limit]]
        nxt = encode_cursor(items[-1].id) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def update_recurrence(
        self, user_id: str, recurrence_id: str, mutate: Callable[[Recurrence], Recurrence]
    ) -> Recurrence:
        ref = self._rec_ref(user_id, recurrence_id)

        def attempt() -> Recurrence:
            snap = ref.get()
            if not snap.exists:
                raise NotFound("recurrence not found")
            new = mutate(recurrence_of(snap.id, snap.to_dict() or {}))
            batch = self.db.batch()
            batch.update(ref, recurrence_doc(new), option=unchanged(snap))
            commit(batch)
            return new

        return self._optimistic(attempt)

    def delete_recurrence(self, user_id: str, recurrence_id: str) -> bool:
        return self._delete_existing(self._rec_ref(user_id, recurrence_id))

    def due_recurrences(self, user_id: str, on: date) -> list[Recurrence]:
        q = self._col(user_id, "recurrences").where(
            filter=FieldFilter("next_due", "<=", on.isoformat())
        )
        return [recurrence_of(s.id, s.to_dict() or {}) for s in q.stream()]

    def materialize(
        self,
        user_id: str,
        recurrence_id: str,
        plan: Callable[[Recurrence], Materialization | None],
    ) -> tuple[Recurrence, list[Transaction]] | None:
        ref = self._rec_ref(user_id, recurrence_id)
        txns = self._col(user_id, "transactions")

        def attempt() -> tuple[Recurrence, list[Transaction]] | None:
            snap = ref.get()
            if not snap.exists:
                return None
            step = plan(recurrence_of(snap.id, snap.to_dict() or {}))
            if step is None:
                return None
            wanted = list(step.transactions)
            refs = [txns.document(t.id) for t in wanted]
            # Create-if-absent: the batch creates (fails if a concurrent run created any of
            # them first) and moves the watermark only if nobody moved it since it was read.
            existing = {s.id for s in self.db.get_all(refs, []) if s.exists} if refs else set()
            fresh = [t for t in wanted if t.id not in existing]
            ledger = LedgerBatch(self.db, user_id)
            for t in fresh:
                ledger.create(t)
            ledger.check_limits()
            doc = recurrence_doc(step.recurrence)
            ledger.stage().update(
                ref,
                {k: doc[k] for k in ("materialized_through", "next_due")},
                option=unchanged(snap),
            )
            try:
                commit(ledger.batch)
            except gexc.AlreadyExists as error:
                raise Stale(str(error)) from error
            except gexc.NotFound:
                raise NotFound("the recurrence's account no longer exists") from None
            return step.recurrence, fresh

        return self._optimistic(attempt)
