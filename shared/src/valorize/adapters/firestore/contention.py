"""Two writers at one document: every read-then-write of the Firestore adapters goes through
`optimistic`, the one place that decides what contention is, retries it and gives up cleanly.

An attempt reads without locks, decides, and commits one batch whose writes carry
preconditions on what it read (`unchanged(snapshot)`: the document's update time; `create`
for what must not exist yet). A batch is atomic, so a failed precondition writes nothing and
the attempt runs again on fresh reads, after a jittered exponential pause, until it commits or
the request's time budget (`VALORIZE_CONTENTION_BUDGET_SECONDS`, well under the functions'
timeout) is spent; then `Contention` answers 409 with Retry-After. No Firestore transaction:
their read locks make the emulator wait about 2 s per conflict and give up after five, and
production Firestore aborts them on hot documents too ("too much contention"). Balances and
counters never need any of this: they move by `Increment` in the same batch.

`Aborted` (which production may return for any write to a hot document) is contention too.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from valorize.config import Settings
from valorize.domain.errors import Contention

T = TypeVar("T")
log = logging.getLogger(__name__)

# Full jitter (a pause drawn from [0, min(CAP, FIRST * 2^n)]): writers that collided once do
# not collide again in step.
FIRST_PAUSE = 0.01
MAX_PAUSE = 0.5
# The default time budget of a write under contention (Settings.contention_budget_seconds is
# what bootstrap hands each adapter).
CONTENTION_BUDGET = Settings.contention_budget_seconds


class Stale(Exception):
    """What the attempt read changed before it could write: run it again."""


def optimistic(
    attempt: Callable[[], T],
    *,
    budget: float = CONTENTION_BUDGET,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`attempt()` until it commits; Contention (409) when the budget runs out first."""
    deadline = clock() + budget
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt()
        except (Stale, gexc.Aborted) as error:
            pause = random.uniform(0, min(MAX_PAUSE, FIRST_PAUSE * 2**attempts))
            if clock() + pause >= deadline:
                log.warning("gave up after %d attempts under contention: %s", attempts, error)
                raise Contention(
                    "other requests kept changing this at the same time; retry"
                ) from error
            sleep(pause)


def commit(batch: firestore.WriteBatch) -> list[Any]:
    """Commit an attempt's batch: a failed precondition means a concurrent write won."""
    try:
        return list(batch.commit())
    except gexc.FailedPrecondition as error:
        raise Stale(str(error)) from error


def unchanged(snapshot: Any) -> Any:
    """The precondition that the document is as `snapshot` read it (and still exists)."""
    return firestore.Client.write_option(last_update_time=snapshot.update_time)


def verify(batch: firestore.WriteBatch, snapshot: Any, field: str) -> None:
    """Make the batch fail if a document it read but does not change was changed meanwhile:
    rewriting one field with the value read changes nothing (not even the update time),
    but the precondition is checked atomically with the batch's real writes."""
    batch.update(snapshot.reference, {field: snapshot.get(field)}, option=unchanged(snapshot))
