"""The one runner every read-then-write goes through (adapters/firestore/contention.py):
what it retries, how long, and what the caller gets when the budget runs out."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.api_core import exceptions as gexc

from valorize.adapters.firestore.contention import MAX_PAUSE, Stale, commit, optimistic
from valorize.domain.errors import Contention, NotFound


class Clock:
    """Time that moves only when the runner sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def failing(times: int, error: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return calls, attempt


@pytest.mark.parametrize("error", [Stale("changed"), gexc.Aborted("too much contention")])
def test_contention_is_retried_until_the_attempt_commits(error: Exception) -> None:
    clock = Clock()
    calls, attempt = failing(5, error)
    assert optimistic(attempt, budget=10, sleep=clock.sleep, clock=clock) == "done"
    assert len(calls) == 6 and len(clock.pauses) == 5
    assert all(0 <= p <= MAX_PAUSE for p in clock.pauses)


def test_past_the_budget_it_is_a_409_with_retry_after() -> None:
    clock = Clock()
    calls, attempt = failing(10_000, Stale("changed"))
    with pytest.raises(Contention) as raised:
        optimistic(attempt, budget=3, sleep=clock.sleep, clock=clock)
    assert raised.value.status == 409 and raised.value.retry_after >= 1
    assert clock.now <= 3 and len(calls) > 5


@pytest.mark.parametrize(
    "error", [NotFound("gone"), gexc.FailedPrecondition("needs an index"), RuntimeError("bug")]
)
def test_anything_else_goes_through_at_once(error: Exception) -> None:
    clock = Clock()
    calls, attempt = failing(1, error)
    with pytest.raises(type(error)):
        optimistic(attempt, budget=10, sleep=clock.sleep, clock=clock)
    assert len(calls) == 1 and clock.pauses == []


def test_a_failed_precondition_at_commit_is_stale() -> None:
    class Batch:
        def commit(self) -> list[object]:
            raise gexc.FailedPrecondition("the stored version does not match")

    with pytest.raises(Stale):
        commit(Batch())  # type: ignore[arg-type]
