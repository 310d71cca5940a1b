"""The IdempotencyStore port, and the commit every create with an Idempotency-Key goes
through: the record is created in the same batch as the effect it guards.

    users/{uid}/idempotency/{key_hash}   fingerprint, status, body, expires_at
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from valorize.adapters.firestore.base import FirestoreAdapter
from valorize.adapters.firestore.documents import idem_doc
from valorize.domain.errors import NotFound
from valorize.service.ports.idempotency import IdempotencyRecord, IdempotentReplay


def _ref(db: firestore.Client, scope: str, key_hash: str) -> firestore.DocumentReference:
    ref: firestore.DocumentReference = (
        db.collection("users").document(scope).collection("idempotency").document(key_hash)
    )
    return ref


def commit_with_record(
    db: firestore.Client,
    batch: firestore.WriteBatch,
    scope: str,
    idem: IdempotencyRecord | None,
    on_conflict: Callable[[], Exception] | None = None,
) -> list[Any]:
    """Commit a create's batch with its Idempotency-Key record (when there is one), and
    answer its WriteResults (the record's, when there is one, last). A key
    used before fails the batch: IdempotentReplay with the first answer. Another create that
    met an existing document raises `on_conflict()` (else AlreadyExists); an update that met
    a document deleted meanwhile, NotFound."""
    if idem is not None:
        batch.create(_ref(db, scope, idem.key_hash), idem_doc(idem))
    try:
        return list(batch.commit())
    except gexc.AlreadyExists:
        if idem is not None:
            prior = FirestoreIdempotency(db).get_idempotency(
                scope, idem.key_hash, drop_expired=False
            )
            if prior is not None:
                raise IdempotentReplay(prior) from None
        if on_conflict is not None:
            raise on_conflict() from None
        raise
    except gexc.NotFound:
        # An update() in the batch met a document deleted meanwhile (e.g. the account).
        raise NotFound("a referenced resource no longer exists") from None


class FirestoreIdempotency(FirestoreAdapter):
    def get_idempotency(
        self, scope: str, key_hash: str, drop_expired: bool = True
    ) -> IdempotencyRecord | None:
        ref = _ref(self.db, scope, key_hash)
        snap = ref.get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        if drop_expired and d["expires_at"] <= datetime.now(UTC):
            ref.delete()
            return None
        return IdempotencyRecord(
            key_hash, d["fingerprint"], d["status"], d["body"], d["expires_at"]
        )

    def claim_idempotency(self, scope: str, claim: IdempotencyRecord) -> IdempotencyRecord | None:
        try:
            _ref(self.db, scope, claim.key_hash).create(idem_doc(claim))
        except gexc.AlreadyExists:
            return self.get_idempotency(scope, claim.key_hash, drop_expired=False)
        return None

    def put_idempotency(self, scope: str, record: IdempotencyRecord) -> None:
        _ref(self.db, scope, record.key_hash).set(idem_doc(record))

    def drop_idempotency(self, scope: str, key_hash: str) -> None:
        _ref(self.db, scope, key_hash).delete()
