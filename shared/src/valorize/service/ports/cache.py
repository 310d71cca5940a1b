"""The per-user cache of read answers (adapters/cache.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
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


class BumpsMany(Protocol):
    def bump_all(self, bumps: Sequence[tuple[str, Scope]]) -> None:
        """Bump each (user, scope) once, together."""
        ...


# The bumps kept within the unit of work open on this context (`bumps_at_end`), per cache.
_KEPT: ContextVar[dict[BumpsMany, set[tuple[str, Scope]]] | None] = ContextVar(
    "cache_bumps_kept", default=None
)


@contextmanager
def bumps_at_end() -> Iterator[None]:
    """One unit of work (a request's or a task's handler, entrypoints/http.py): the bumps a
    cache is asked for within it are kept and made when it ends, each (user, scope) once, in
    one round trip, whether it ends well or not. An automation run announcing every
    occurrence it created, or a transfer its two sides, bumps the ledger once, not per event;
    the bumps still land before the write is answered. Nested: the outer one makes them."""
    if _KEPT.get() is not None:
        yield
        return
    kept: dict[BumpsMany, set[tuple[str, Scope]]] = {}
    token = _KEPT.set(kept)
    try:
        yield
    finally:
        _KEPT.reset(token)
        for cache, bumps in kept.items():
            cache.bump_all(sorted(bumps))


def kept_for_later(cache: BumpsMany, user_id: str, scope: Scope) -> bool:
    """Keep the bump for the end of the open unit of work; False when none is open (the
    cache then bumps at once)."""
    kept = _KEPT.get()
    if kept is None:
        return False
    kept.setdefault(cache, set()).add((user_id, scope))
    return True
