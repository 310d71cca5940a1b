"""The IdempotencyStore port in memory (adapters/firestore/idempotency.py). The records a
create writes with its effect go through Memory.check_idem/save_idem."""

from __future__ import annotations

from tests.fakes.memory import Memory
from valorize.service.ports import IdempotencyRecord


class InMemoryIdempotency:
    def __init__(self, memory: Memory | None = None) -> None:
        self.memory = memory if memory is not None else Memory()

    def get_idempotency(
        self, scope: str, key_hash: str, drop_expired: bool = True
    ) -> IdempotencyRecord | None:
        records = self.memory.space(scope).idempotency
        record = records.get(key_hash)
        if record is None:
            return None
        if drop_expired and record.expires_at <= self.memory.now():
            del records[key_hash]
            return None
        return record

    def claim_idempotency(self, scope: str, claim: IdempotencyRecord) -> IdempotencyRecord | None:
        records = self.memory.space(scope).idempotency
        if claim.key_hash in records:
            return records[claim.key_hash]
        records[claim.key_hash] = claim
        return None

    def put_idempotency(self, scope: str, record: IdempotencyRecord) -> None:
        self.memory.space(scope).idempotency[record.key_hash] = record

    def drop_idempotency(self, scope: str, key_hash: str) -> None:
        self.memory.space(scope).idempotency.pop(key_hash, None)
