"""The RateLimiter port in memory (adapters/rate_limits.py): a count per kind and user, with
no window (a test moves time by calling `reset`)."""

from __future__ import annotations


class CountingLimiter:
    def __init__(self, limits: dict[str, int] | None = None, wait: int = 42) -> None:
        """`limits`: kind -> hits allowed; a kind not named is not limited."""
        self.limits = dict(limits or {})
        self.wait = wait
        self.hits: dict[tuple[str, str], int] = {}

    def hit(self, kind: str, user_id: str) -> int:
        limit = self.limits.get(kind)
        if limit is None:
            return 0
        key = (kind, user_id)
        if self.hits.get(key, 0) >= limit:
            return self.wait
        self.hits[key] = self.hits.get(key, 0) + 1
        return 0

    def reset(self) -> None:
        self.hits.clear()
