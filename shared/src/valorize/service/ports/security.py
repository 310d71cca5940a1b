"""Passwords and the login throttle."""

from __future__ import annotations

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
