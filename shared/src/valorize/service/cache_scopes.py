"""Cache invalidation of the scopes whose data is one store's: notifications, rules,
recurrences, imports (service/ports/cache.py `Scope`; the ledger's scope is bumped by its
domain events, bootstrap._subscribe_cache_invalidation, and by the account deletion's
writes, which publish no event per page).

The store each service is handed is wrapped (`watched`) so that every call that is not a
declared read bumps the caller's version of the scope once it returns or raises (a write
that raised may have landed in part). Invalidation then sits where the data changes rather
than in each service path: a request's write, a task worker's (the notify worker storing a
notification, an automation run moving a recurrence's next due date, an ingest worker moving
an import through its states and progress) and any write added later are covered alike. A
method not declared a read bumps: an undeclared read costs a needless bump, never a stale
answer. Every write takes the user id first (tests/unit/test_cache_scopes.py checks the
ports).

Bumped after the write, never before: a read that missed meanwhile stores its answer under
the version it read (adapters/cache.py), which the bump has made unreachable."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from valorize.service.ports.cache import Scope

T = TypeVar("T")
Bump = Callable[[str, Scope], None]


@dataclass(frozen=True)
class Watched:
    scope: Scope
    # The methods that change nothing.
    reads: frozenset[str]
    # Methods answering a writer (add, close, written): it bumps as its batches land.
    writers: frozenset[str] = frozenset()


# The account service's writes: a deletion's worker deletes page after page within one
# delivery and announces its progress (AccountDeleting) only when its time budget runs out;
# each page moves balances, lists and dashboards, and the deletion's progress.
ACCOUNTS = Watched(
    "ledger", frozenset({"get_account", "get_accounts", "list_accounts", "get_deletion"})
)
NOTIFICATIONS = Watched(
    "notifications",
    frozenset({"get_notification", "list_notifications", "count_unread", "get_preferences"}),
)
RULES = Watched("rules", frozenset({"list_rules", "get_rule_job"}))
RECURRENCES = Watched(
    "recurrences", frozenset({"get_recurrence", "list_recurrences", "due_recurrences"})
)
IMPORTS = Watched(
    "imports",
    frozenset(
        {
            "get_import",
            "list_imports",
            "existing_transactions",
            "list_rows",
            "pending_amounts",
            "committed_amounts",
            "chunk",
            "get_transactions",
        }
    ),
    writers=frozenset({"row_writer"}),
)


def watched(store: T, watch: Watched, bump: Bump) -> T:
    """`store`, with every write bumping the writer's version of `watch.scope`."""
    return cast(T, _Bumping(store, watch, bump))


class _Bumping:
    def __init__(self, store: Any, watch: Watched, bump: Bump) -> None:
        self._store = store
        self._watch = watch
        self._bump = bump

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name.startswith("_") or name in self._watch.reads or not callable(found):
            return found
        if name in self._watch.writers:
            return self._writer(name, found)
        scope, bump = self._watch.scope, self._bump

        @functools.wraps(found)
        def write(user_id: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return found(user_id, *args, **kwargs)
            finally:
                bump(user_id, scope)

        return write

    def _writer(self, name: str, opened: Callable[..., Any]) -> Callable[..., Any]:
        scope, bump = self._watch.scope, self._bump

        def open_writer(user_id: str, *args: Any, **kwargs: Any) -> _BumpingWriter:
            return _BumpingWriter(opened(user_id, *args, **kwargs), lambda: bump(user_id, scope))

        return open_writer


class _BumpingWriter:
    """A batched writer (ports/imports.py RowWriter) that bumps when a batch has landed: seen
    at the next row handed to it (a bump per batch, not per row) and when it closes."""

    def __init__(self, writer: Any, bump: Callable[[], None]) -> None:
        self._writer = writer
        self._bump = bump
        self._seen = 0

    @property
    def written(self) -> int:
        return int(self._writer.written)

    def add(self, row: Any) -> None:
        self._writer.add(row)
        landed = self.written
        if landed != self._seen:
            self._seen = landed
            self._bump()

    def close(self, flush: bool = True) -> None:
        try:
            self._writer.close(flush)
        finally:
            self._bump()
