"""Passwords and the login throttle."""

from __future__ import annotations


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
