"""The IdempotencyStore port (the records a write stores with its effect are checked in the
suites of the stores that write them)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.contracts.conftest import Make
from valorize.bootstrap import Services
from valorize.service.ports import IdempotencyRecord

LATER = datetime(2100, 1, 1, tzinfo=UTC)
PAST = datetime(2000, 1, 1, tzinfo=UTC)


def test_claim_finish_and_drop(services: Services, make: Make) -> None:
    uid, other = make.user(), make.user()
    store = services.idempotency_store
    claim = IdempotencyRecord("c" * 64, "fp", 0, None, LATER)
    assert store.get_idempotency(uid, claim.key_hash) is None
    assert store.claim_idempotency(uid, claim) is None
    rival = IdempotencyRecord("c" * 64, "other", 0, None, LATER)
    assert store.claim_idempotency(uid, rival) == claim  # whoever holds it
    assert store.claim_idempotency(other, rival) is None  # keys are per user
    done = IdempotencyRecord("c" * 64, "fp", 201, {"id": "x", "ü": [1, None]}, LATER)
    store.put_idempotency(uid, done)
    assert store.get_idempotency(uid, done.key_hash) == done
    store.drop_idempotency(uid, done.key_hash)
    assert store.get_idempotency(uid, done.key_hash) is None
    store.drop_idempotency(uid, done.key_hash)  # dropping twice is fine


def test_an_expired_record_is_forgotten_on_read(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.idempotency_store
    old = IdempotencyRecord("e" * 64, "fp", 201, {}, PAST)
    store.put_idempotency(uid, old)
    # A write that met the key reads it back as it is; a lookup forgets it.
    assert store.get_idempotency(uid, old.key_hash, drop_expired=False) == old
    assert store.get_idempotency(uid, old.key_hash) is None
    assert store.get_idempotency(uid, old.key_hash, drop_expired=False) is None
    assert store.claim_idempotency(uid, old) is None
