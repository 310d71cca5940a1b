"""Passwords, the login throttle and the token revocation feed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, hashed: str, password: str) -> bool: ...


class LoginThrottle(Protocol):
    def attempt(self, key: str) -> int:
        """Count one login attempt as a failure and, in the same atomic step, say how many
        seconds the key must still wait (0: go on and check the password)."""
        ...

    def succeeded(self, key: str) -> None:
        """The password was right: forget the key's failures."""
        ...


class RevocationFeed(Protocol):
    """Token revocations announced to every instance, so that an instance can keep verified
    tokens in memory and still stop honouring a revoked one at once (adapters/revocations.py).
    """

    def announce(self, token_id: str) -> None:
        """Tell every instance; called after the revocation is stored."""
        ...

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        """Apply what has arrived: `forget` each revoked token id, or `reset` everything
        when revocations may have been missed (the feed was down). True while the feed is
        live, i.e. while tokens kept in memory can be trusted."""
        ...
