"""The UserStore port.

credentials/{key_of(email)}   email, user_id, password_hash (emails are unique)
tokens/{token_id}             user_id, name, secret_hash, expires_at, last_used_at
users/{uid}                   profile
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

from google.api_core import exceptions as gexc
from google.cloud.firestore_v1 import FieldFilter

from valorize.adapters.firestore.base import FirestoreAdapter
from valorize.adapters.firestore.categories import stage_category
from valorize.adapters.firestore.documents import token_doc, token_of, user_doc, user_of
from valorize.adapters.firestore.idempotency import commit_with_record
from valorize.domain import ids
from valorize.domain.errors import Conflict
from valorize.domain.model import ApiToken, Category, User
from valorize.service.ports.idempotency import IdempotencyRecord


class FirestoreUsers(FirestoreAdapter):
    def create_user(
        self,
        user: User,
        password_hash: str,
        categories: Sequence[Category],
        token: ApiToken,
        secret_hash: str,
    ) -> None:
        batch = self.db.batch()
        batch.create(
            self.db.collection("credentials").document(ids.key_of(user.email)),
            {"email": user.email, "user_id": user.id, "password_hash": password_hash},
        )
        batch.create(self._user_ref(user.id), user_doc(user))
        for c in categories:
            stage_category(batch, self._user_ref(user.id), c)
        batch.create(self.db.collection("tokens").document(token.id), token_doc(token, secret_hash))
        commit_with_record(
            self.db,
            batch,
            user.id,
            None,
            lambda: Conflict("an account with this email already exists"),
        )

    def get_user(self, user_id: str) -> User | None:
        snap = self._user_ref(user_id).get()
        return user_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def find_credentials(self, email: str) -> tuple[str, str] | None:
        snap = self.db.collection("credentials").document(ids.key_of(email)).get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        return d["user_id"], d["password_hash"]

    def add_token(
        self, token: ApiToken, secret_hash: str, idem: IdempotencyRecord | None = None
    ) -> None:
        batch = self.db.batch()
        batch.create(self.db.collection("tokens").document(token.id), token_doc(token, secret_hash))
        commit_with_record(self.db, batch, token.user_id, idem)

    def get_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        if not ids.ENTITY.matches(token_id):
            return None
        snap = self.db.collection("tokens").document(token_id).get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        return token_of(snap.id, d), d["secret_hash"]

    def touch_token(self, token_id: str, when: datetime) -> None:
        # Revoked meanwhile: nothing to record.
        with contextlib.suppress(gexc.NotFound):
            self.db.collection("tokens").document(token_id).update({"last_used_at": when})

    def list_tokens(self, user_id: str) -> list[ApiToken]:
        snaps = (
            self.db.collection("tokens")
            .where(filter=FieldFilter("user_id", "==", user_id))
            .stream()
        )
        tokens = [token_of(s.id, s.to_dict() or {}) for s in snaps]
        return sorted(tokens, key=lambda t: t.created_at, reverse=True)

    def delete_token(self, user_id: str, token_id: str) -> bool:
        found = self.get_token(token_id)
        if found is None or found[0].user_id != user_id:
            return False
        return self._delete_existing(self.db.collection("tokens").document(token_id))
