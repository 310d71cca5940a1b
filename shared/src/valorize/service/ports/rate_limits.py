"""Per-user rate limits (writes, uploads): counted in a store every instance shares."""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    def hit(self, kind: str, user_id: str) -> int:
        """Count one `kind` request of the user against that kind's limit: 0 when it is within
        the limit, else the seconds until one more would be (that request is not counted).
        Never raises: when the store is unreachable it lets the request through (logged)."""
        ...
