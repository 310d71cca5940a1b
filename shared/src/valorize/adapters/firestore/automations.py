"""The AutomationStore port: the scheduler's reads across users, and its run log.

users/{uid}/automation_runs/{kind-date}   runs, created, last_run_at
"""

from __future__ import annotations

from datetime import date, datetime

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.query import Query

from valorize.adapters.firestore.base import FirestoreAdapter, by_id
from valorize.domain import ids
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.service.ports.pages import PageResult


class FirestoreAutomations(FirestoreAdapter):
    def users_with_due_recurrences(
        self, on: date, limit: int, cursor: str | None
    ) -> PageResult[str]:
        # Needs the collection-group single-field index on recurrences.next_due (infra).
        q: Query = (
            self.db.collection_group("recurrences")
            .where(filter=FieldFilter("next_due", "<=", on.isoformat()))
            .order_by("next_due")
            .order_by(FieldPath.document_id())
        )
        if cursor:
            due, _, path = decode_cursor(cursor, ids.DUE_CURSOR).partition("|")
            q = q.start_after({"next_due": due, FieldPath.document_id(): self.db.document(path)})
        snaps = list(q.limit(limit).stream())
        users: dict[str, None] = {}
        for s in snaps:
            parent = s.reference.parent.parent
            if parent is not None:
                users.setdefault(parent.id)
        nxt = None
        if len(snaps) == limit:
            last = snaps[-1]
            nxt = encode_cursor(f"{(last.to_dict() or {})['next_due']}|{last.reference.path}")
        return PageResult(list(users), nxt)

    def list_user_ids(self, limit: int, cursor: str | None) -> PageResult[str]:
        snaps = list(by_id(self.db.collection("users"), cursor).select([]).limit(limit).stream())
        found = [s.id for s in snaps]
        return PageResult(found, encode_cursor(found[-1]) if len(found) == limit else None)

    def record_automation_run(
        self, user_id: str, run_id: str, created: int, when: datetime
    ) -> None:
        self._col(user_id, "automation_runs").document(run_id).set(
            {
                "runs": firestore.Increment(1),
                "created": firestore.Increment(created),
                "last_run_at": when,
            },
            merge=True,
        )
