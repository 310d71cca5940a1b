"""The import's lifecycle as pure transitions (domain/imports.py `Import`), against a
brute-force model: a table of which transition leads where from which status."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from valorize.domain.imports import Counts, Import, ImportStatus, StatementSummary

S = ImportStatus
T0 = datetime(2025, 1, 1, tzinfo=UTC)

# transition -> {status it applies to: status it leads to}; anything else: None (no change).
MODEL: dict[str, dict[ImportStatus, ImportStatus]] = {
    "start": {S.UPLOADED: S.PROCESSING, S.PROCESSING: S.PROCESSING},
    "staged": {S.PROCESSING: S.READY},
    "failed": {S.UPLOADED: S.FAILED, S.PROCESSING: S.FAILED},
    "begin_commit": {S.READY: S.COMMITTING, S.COMMITTING: S.COMMITTING},
    "finish_commit": {S.COMMITTING: S.COMMITTED},
    "begin_revert": {S.COMMITTED: S.REVERTING, S.REVERTING: S.REVERTING},
    "finish_revert": {S.REVERTING: S.REVERTED},
}

SUMMARY = StatementSummary(0, "bank", "BRL", "a" * 32, False, 3, 0, credits=10, debits=5)


def uploaded() -> Import:
    return Import("i" * 32, S.UPLOADED, "s.ofx", "imports/u/i.ofx", 10, "0" * 64, T0, T0)


def apply(record: Import, name: str, now: datetime) -> Import | None:
    if name == "staged":
        days = [date(2025, 1, 3), date(2024, 12, 30)]
        return record.staged(now, Counts(new=3), 3, (SUMMARY,), ("a" * 32,), days)
    if name == "failed":
        return record.failed("broken", now)
    method = getattr(record, name)
    result: Import | None = method(now)
    return result


@pytest.mark.parametrize("name", sorted(MODEL))
@pytest.mark.parametrize("status", list(S))
def test_each_transition_applies_only_where_the_model_says(name: str, status: ImportStatus) -> None:
    record = Import(**{**uploaded().__dict__, "status": status})
    after = apply(record, name, T0 + timedelta(hours=1))
    expected = MODEL[name].get(status)
    assert (after.status if after else None) is expected
    if after is not None:
        assert after.updated_at == T0 + timedelta(hours=1)
        assert after.id == record.id and after.created_at == record.created_at


def test_what_each_transition_records() -> None:
    later = T0 + timedelta(minutes=5)
    started = uploaded().start(T0)
    assert started and started.attempts == 1 and started.processed == 0
    again = started.start(later)
    assert again and again.attempts == 2
    ready = apply(again, "staged", later)
    assert ready and ready.counts == Counts(new=3) and ready.processed == ready.total == 3
    assert (ready.first_date, ready.last_date) == (date(2024, 12, 30), date(2025, 1, 3))
    assert ready.processed_at == later and ready.reason is None
    committing = ready.begin_commit(later)
    assert committing and committing.requests == 1
    resumed = committing.begin_commit(later)
    assert resumed and resumed.requests == 2
    done = resumed.finish_commit(later)
    assert done and done.committed_at == later
    reverting = Import(**{**done.__dict__, "cursor": "000-0000003"}).begin_revert(later)
    # A revert starts from the first row; a resumed one keeps its cursor.
    assert reverting and reverting.cursor is None and reverting.requests == 3
    kept = Import(**{**reverting.__dict__, "cursor": "000-0000002"}).begin_revert(later)
    assert kept and kept.cursor == "000-0000002"
    undone = kept.finish_revert(later)
    assert undone and undone.reverted_at == later
    failed = uploaded().failed("no lines", later)
    assert failed and failed.reason == "no lines"


class Lifecycle(RuleBasedStateMachine):
    """Any sequence of transitions: the import follows the model, never skips a state, and
    what it recorded stays recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.record = uploaded()
        self.status = S.UPLOADED
        self.now = T0
        self.requests = 0

    @rule(name=st.sampled_from(sorted(MODEL)), minutes=st.integers(0, 60))
    def transition(self, name: str, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        after = apply(self.record, name, self.now)
        expected = MODEL[name].get(self.status)
        if expected is None:
            assert after is None
            return
        assert after is not None and after.status is expected
        if name in ("begin_commit", "begin_revert"):
            self.requests += 1
        self.record, self.status = after, expected

    @invariant()
    def consistent(self) -> None:
        r = self.record
        assert r.status is self.status
        assert r.requests == self.requests
        assert (r.reason is not None) == (r.status is S.FAILED)
        if r.status not in (S.UPLOADED, S.PROCESSING, S.FAILED):
            assert r.processed_at is not None and r.counts == Counts(new=3)
        assert (r.committed_at is not None) == (r.status in (S.COMMITTED, S.REVERTING, S.REVERTED))
        assert (r.reverted_at is not None) == (r.status is S.REVERTED)


TestLifecycle = Lifecycle.TestCase
