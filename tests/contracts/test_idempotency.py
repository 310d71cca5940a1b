"""The IdempotencyStore port (the records a write stores with its effect are checked in the
suites of the stores that write them)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.contracts.conftest import Make
from tests.fakes.notifications import FakePublisher
from valorize.bootstrap import Services
from valorize.domain.errors import Unavailable
from valorize.service.ports import IdempotencyRecord
from valorize.service.task_pushes import TaskPushes

LATER = datetime(2100, 1, 1, tzinfo=UTC)
PAST = datetime(2000, 1, 1, tzinfo=UTC)


def test_claim_finish_and_drop(services: Services, make: Make) -> None:
    uid, other = make.user(), make.user()
    store = services.idempotency_store
    claim = IdempotencyRecord("c" * 64, "fp", 0, None, LATER)
    assert store.get_idempotency(uid, claim.key_hash) is None
    assert store.claim_idempotency(uid, claim) is None
    rival = IdempotencyRecord("c" * 64, "other", 0, None, LATER)
    assert store.claim_idempotency(uid, rival) == claim  # whoever holds it
    assert store.claim_idempotency(other, rival) is None  # keys are per user
    done = IdempotencyRecord("c" * 64, "fp", 201, {"id": "x", "ü": [1, None]}, LATER)
    store.put_idempotency(uid, done)
    assert store.get_idempotency(uid, done.key_hash) == done
    store.drop_idempotency(uid, done.key_hash)
    assert store.get_idempotency(uid, done.key_hash) is None
    store.drop_idempotency(uid, done.key_hash)  # dropping twice is fine


def test_an_expired_record_is_forgotten_on_read(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.idempotency_store
    old = IdempotencyRecord("e" * 64, "fp", 201, {}, PAST)
    store.put_idempotency(uid, old)
    # A write that met the key reads it back as it is; a lookup forgets it.
    assert store.get_idempotency(uid, old.key_hash, drop_expired=False) == old
    assert store.get_idempotency(uid, old.key_hash) is None
    assert store.get_idempotency(uid, old.key_hash, drop_expired=False) is None
    assert store.claim_idempotency(uid, old) is None


def test_a_tasks_unpushed_events_wait_in_it_for_its_retry(services: Services, make: Make) -> None:
    """service/task_pushes.py keeps a task's live events that Redis refused under the task's
    record here, payloads and all, until its redelivery pushes them."""
    uid = make.user()
    publisher = FakePublisher(up=False)
    sure = TaskPushes(publisher, services.idempotency_store, services.clock)
    sent = [
        ("transaction.created", {"id": "t1", "amount": -150, "tags": [["x"]], "ü": None}),
        ("dashboard.changed", {"months": ["2024-01"]}),
    ]
    with pytest.raises(Unavailable), sure.delivery("task-1", uid, redelivered=False):
        for event, data in sent:
            sure.publish(uid, event, data)
    publisher.up = True
    with sure.delivery("task-2", uid, redelivered=True):
        pass  # another task's record: nothing of task-1's
    assert publisher.events == []
    with sure.delivery("task-1", uid, redelivered=True):
        pass
    assert publisher.events == [(uid, event, data) for event, data in sent]
    with sure.delivery("task-1", uid, redelivered=True):
        pass  # pushed once: the record went with it
    assert len(publisher.events) == 2
