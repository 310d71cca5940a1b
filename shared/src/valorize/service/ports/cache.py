"""The per-user cache of read answers (adapters/cache.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

# How a read went, said in the X-Cache response header.
Outcome = Literal["hit", "miss", "bypass"]


class QueryCache(Protocol):
    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes]
    ) -> tuple[bytes, Outcome]:
        """The stored answer under `key` for this user's current version of their data, or
        `render()`'s, stored; and which it was."""
        ...

    def bump(self, user_id: str) -> None:
        """Something the user can see changed: every cached answer of theirs is stale."""
        ...


class Feed(Protocol):
    """Announcements from other instances, read before what is kept in memory is trusted
    (adapters/feeds.py)."""

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        """Apply what has arrived: `forget` each announced item, or `reset` everything when
        announcements may have been missed. True while the feed is live."""
        ...
