"""The per-user cache of read answers (adapters/cache.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol, get_args

# How a read went, said in the X-Cache response header.
Outcome = Literal["hit", "miss", "bypass"]

# What a cached answer depends on, each with a version of its own per user: a write bumps
# only its scope, so the frequent, narrow writes of a worker (a notification arriving, an
# import's progress, a recurrence's next due date moving) keep the user's ledger answers
# (dashboards, transaction pages) cached. A read depends on exactly one scope.
Scope = Literal["ledger", "notifications", "rules", "recurrences", "imports", "auth"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
LEDGER: Scope = "ledger"


class QueryCache(Protocol):
    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes], scope: Scope = LEDGER
    ) -> tuple[bytes, Outcome]:
        """The stored answer under `key` for this user's current version of the scope's data,
        or `render()`'s, stored; and which it was."""
        ...

    def bump(self, user_id: str, scope: Scope = LEDGER) -> None:
        """Something of the scope the user can see changed: every cached answer of theirs in
        that scope is stale (the other scopes' answers stay)."""
        ...


class Feed(Protocol):
    """Announcements from other instances, read before what is kept in memory is trusted
    (adapters/feeds.py)."""

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        """Apply what has arrived: `forget` each announced item, or `reset` everything when
        announcements may have been missed. True while the feed is live."""
        ...
