"""Idempotency-Key records. A command that writes stores its record in the same atomic write
as its effect (the `idem` parameter of the stores' create methods), so a replay can never
write twice and never loses the first answer. The HTTP layer reads records, and claims a key
before a command that cannot carry the record in its own write, through `IdempotencyStore`.
Records are scoped to the user (`scope`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class IdempotencyRecord:
    key_hash: str
    fingerprint: str
    status: int
    body: Any
    expires_at: datetime


@dataclass
class IdempotencyMark:
    """Handed by the entry point to a command; the service seals it with its result."""

    key_hash: str
    fingerprint: str
    expires_at: datetime
    render: Callable[[Any], tuple[int, Any]]

    def seal(self, result: Any) -> IdempotencyRecord:
        status, body = self.render(result)
        return IdempotencyRecord(self.key_hash, self.fingerprint, status, body, self.expires_at)


class IdempotentReplay(Exception):
    """The key was already used: the stored record answers instead."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__("idempotent replay")
        self.record = record


class IdempotencyStore(Protocol):
    def get_idempotency(
        self, scope: str, key_hash: str, drop_expired: bool = True
    ) -> IdempotencyRecord | None:
        """The record, or None; an expired one is deleted and is None (unless
        `drop_expired` is false: a write that met the key reads it back as it is)."""
        ...

    def claim_idempotency(self, scope: str, claim: IdempotencyRecord) -> IdempotencyRecord | None:
        """Take the key (create-if-absent): None when taken, else whoever holds it (in
        flight or done)."""
        ...

    def put_idempotency(self, scope: str, record: IdempotencyRecord) -> None:
        """Replace the claim with the finished answer."""
        ...

    def drop_idempotency(self, scope: str, key_hash: str) -> None:
        """Let the key go (the claimed command failed)."""
        ...
