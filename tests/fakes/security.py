"""Passwords, the login throttle and the token revocation feed."""

from __future__ import annotations

from collections.abc import Callable


class FakeHasher:
    """Cheap and transparent; `verify` also accepts only what `hash` produced."""

    def __init__(self) -> None:
        self.verified = 0

    def hash(self, password: str) -> str:
        return "hashed:" + password

    def verify(self, hashed: str, password: str) -> bool:
        self.verified += 1
        return hashed == "hashed:" + password


class FakeThrottle:
    """At most `limit` attempts per key before it waits; a success clears the key."""

    def __init__(self, limit: int = 5, wait: int = 900) -> None:
        self.limit = limit
        self.wait = wait
        self.failures: dict[str, int] = {}

    def attempt(self, key: str) -> int:
        self.failures[key] = self.failures.get(key, 0) + 1
        return self.wait if self.failures[key] > self.limit else 0

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)


class LocalRevocations:
    """The feed of one instance: what is announced is applied at the next sync; `live`
    False plays a feed that is down (Redis unreachable)."""

    def __init__(self) -> None:
        self.live = True
        self.pending: list[str] = []
        self.announced: list[str] = []

    def announce(self, token_id: str) -> None:
        self.announced.append(token_id)
        self.pending.append(token_id)

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        if not self.live:
            return False
        while self.pending:
            forget(self.pending.pop(0))
        return True
