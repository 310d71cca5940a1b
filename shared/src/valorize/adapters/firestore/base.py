"""What every Firestore adapter module starts from: the client and the user's subtree."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.query import Query

from valorize.adapters.firestore.contention import CONTENTION_BUDGET, optimistic
from valorize.domain import ids
from valorize.domain.ids import decode_cursor

T = TypeVar("T")


class FirestoreAdapter:
    def __init__(
        self, client: firestore.Client, contention_budget: float = CONTENTION_BUDGET
    ) -> None:
        self.db = client
        self.contention_budget = contention_budget

    def _optimistic(self, attempt: Callable[[], T]) -> T:
        """`attempt()` until it commits, within this adapter's contention budget."""
        return optimistic(attempt, budget=self.contention_budget)

    def _user_ref(self, uid: str) -> firestore.DocumentReference:
        return self.db.collection("users").document(uid)

    def _col(self, uid: str, name: str) -> firestore.CollectionReference:
        col: firestore.CollectionReference = self._user_ref(uid).collection(name)
        return col

    def _delete_existing(self, ref: firestore.DocumentReference) -> bool:
        """Delete it; False when it was not there (of two racing deletes, one is True)."""
        try:
            ref.delete(option=self.db.write_option(exists=True))
        except gexc.NotFound:
            return False
        return True


def by_id(col: firestore.CollectionReference, cursor: str | None) -> Query:
    """The collection in document-id order, after the entity id a cursor carries."""
    q: Query = col.order_by(FieldPath.document_id())
    if cursor:
        after = decode_cursor(cursor, ids.ENTITY)
        q = q.start_after({FieldPath.document_id(): col.document(after)})
    return q
