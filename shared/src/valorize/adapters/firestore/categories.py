"""The CategoryStore port.

users/{uid}/categories/{id}
users/{uid}/category_names/{key_of(name_key)}   name_key, category_id: names unique per
                                                user (case-insensitive)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.query import Query

from valorize.adapters.firestore.base import FirestoreAdapter
from valorize.adapters.firestore.contention import commit, unchanged
from valorize.adapters.firestore.documents import (
    TXN_FIELDS,
    category_doc,
    category_of,
    name_doc,
    txn_of,
)
from valorize.adapters.firestore.idempotency import commit_with_record
from valorize.adapters.firestore.ledger_batch import LedgerBatch
from valorize.domain import ids
from valorize.domain.errors import Conflict, NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.model import Category
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult

# Transactions moved off a deleted category per batch.
RECATEGORIZE_PAGE = 400


def stage_category(
    batch: firestore.WriteBatch, user: firestore.DocumentReference, category: Category
) -> None:
    """Create the category and claim its name, in `batch` (which fails if the name is taken)."""
    batch.create(user.collection("categories").document(category.id), category_doc(category))
    batch.create(
        user.collection("category_names").document(ids.key_of(category.name_key)),
        name_doc(category),
    )


class FirestoreCategories(FirestoreAdapter):
    def _name_ref(self, uid: str, name_key: str) -> firestore.DocumentReference:
        return self._col(uid, "category_names").document(ids.key_of(name_key))

    def add_category(
        self, user_id: str, category: Category, idem: IdempotencyRecord | None = None
    ) -> None:
        batch = self.db.batch()
        stage_category(batch, self._user_ref(user_id), category)
        commit_with_record(
            self.db,
            batch,
            user_id,
            idem,
            lambda: Conflict(f"a category named {category.name!r} already exists"),
        )

    def get_category(self, user_id: str, category_id: str) -> Category | None:
        snap = self._col(user_id, "categories").document(category_id).get()
        return category_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def get_categories(self, user_id: str, ids: Sequence[str]) -> dict[str, Category]:
        refs = [self._col(user_id, "categories").document(i) for i in dict.fromkeys(ids)]
        return {
            s.id: category_of(s.id, s.to_dict() or {}) for s in self.db.get_all(refs) if s.exists
        }

    def list_categories(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Category]:
        q: Query = self._col(user_id, "categories").order_by("name_key")
        if cursor:
            after = decode_cursor(cursor, ids.NAME_KEY_CURSOR)
            q = q.where(filter=FieldFilter("name_key", ">", after))
        snaps = list(q.limit(limit + 1).stream())
        items = [category_of(s.id, s.to_dict() or {}) for s in snaps[:limit]]
        nxt = encode_cursor(items[-1].name_key) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def update_category(self, user_id: str, old: Category, new: Category) -> None:
        ref = self._col(user_id, "categories").document(old.id)

        def attempt() -> None:
            # The name record to free is the stored one: a concurrent rename may have
            # replaced `old`'s, and freeing that one would leave the winner's taken forever.
            snap = ref.get()
            if not snap.exists:
                raise NotFound("category not found")
            current = (snap.to_dict() or {}).get("name_key", old.name_key)
            batch = self.db.batch()
            batch.update(ref, category_doc(new), option=unchanged(snap))
            if current != new.name_key:
                batch.delete(self._name_ref(user_id, current))
                batch.create(self._name_ref(user_id, new.name_key), name_doc(new))
            try:
                commit(batch)
            except gexc.AlreadyExists:
                raise Conflict(f"a category named {new.name!r} already exists") from None

        self._optimistic(attempt)

    def has_children(self, user_id: str, category_id: str) -> bool:
        q = (
            self._col(user_id, "categories")
            .where(filter=FieldFilter("parent_id", "==", category_id))
            .limit(1)
        )
        return any(True for _ in q.stream())

    def category_in_use(self, user_id: str, category_id: str) -> bool:
        q = (
            self._col(user_id, "transactions")
            .where(filter=FieldFilter("category_ids", "array_contains", category_id))
            .select([])  # whether one exists: its name is enough
            .limit(1)
        )
        return any(True for _ in q.stream())

    def delete_category(self, user_id: str, category: Category, replacement_id: str | None) -> None:
        cid = category.id
        while self._optimistic(lambda: self._recategorize_page(user_id, cid, replacement_id)):
            pass
        batch = self.db.batch()
        # Subcategories outlive their parent as top-level categories.
        for child in (
            self._col(user_id, "categories")
            .where(filter=FieldFilter("parent_id", "==", cid))
            .stream()
        ):
            batch.update(child.reference, {"parent_id": None})
        batch.delete(self._col(user_id, "categories").document(cid))
        # A category's envelope goes with it (as in the original).
        batch.delete(self._col(user_id, "budgets").document(cid))
        batch.delete(self._name_ref(user_id, category.name_key))
        batch.commit()

    def _recategorize_page(self, user_id: str, cid: str, replacement_id: str | None) -> bool:
        """Move one page of transactions off a category; False when none are left."""
        snaps = list(
            self._col(user_id, "transactions")
            .where(filter=FieldFilter("category_ids", "array_contains", cid))
            .select(TXN_FIELDS)
            .limit(RECATEGORIZE_PAGE)
            .stream()
        )
        if not snaps:
            return False
        ledger = LedgerBatch(self.db, user_id)
        for s in snaps:
            t = txn_of(s.id, s.to_dict() or {})
            moved = replace(
                t,
                category_id=replacement_id if t.category_id == cid else t.category_id,
                splits=tuple(
                    replace(sp, category_id=replacement_id) if sp.category_id == cid else sp
                    for sp in t.splits
                ),
            )
            # Only as read: two deletes of one category must not both move its sums.
            ledger.recategorize(s, t, moved)
        commit(ledger.stage())
        return True
