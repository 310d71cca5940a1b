"""A task's live events (service/task_pushes.py) through the real publisher and a real Redis:
an outage fails the delivery and keeps the events; the retry logs and publishes each once,
in order."""

from __future__ import annotations

import pytest
import redis

from tests import fakes
from tests.integration.test_realtime_log import Subscriber
from valorize.adapters.realtime import EventLog, RealtimePublisher
from valorize.domain.errors import Unavailable
from valorize.service.task_pushes import TaskPushes

pytestmark = pytest.mark.integration


def test_a_tasks_events_outlive_a_redis_outage_and_are_pushed_once(
    dead_redis: redis.Redis, client: redis.Redis
) -> None:
    dead = dead_redis
    publisher = RealtimePublisher(EventLog(dead), cooldown=5, sure_log=EventLog(dead))
    services = fakes.build()
    sure = TaskPushes(publisher, services.idempotency_store, services.clock)
    subscriber = Subscriber(client)
    sent = [
        ("transaction.created", {"id": "t1", "amount": -150}),
        ("account.balance", {"account_id": "a1", "balance": {"amount": 850, "currency": "BRL"}}),
    ]
    with pytest.raises(Unavailable), sure.delivery("task-1", "u1", redelivered=False):
        for event, data in sent:
            sure.publish("u1", event, data)
        # A progress tick is best effort even here: skipped, never raised nor kept.
        assert sure.publish("u1", "import.progress", {"id": "i1", "processed": 1}) is None

    publisher.sure_log = EventLog(client)  # Redis is back
    with sure.delivery("task-1", "u1", redelivered=True):
        pass
    with sure.delivery("task-1", "u1", redelivered=True):
        pass  # a later redelivery: nothing left to push
    got = subscriber.take(3, timeout=1)
    assert [(m["event"], m["data"][0]["data"]) for m in got] == sent
    assert client.xlen("rt:{u1}:log") == 2
    assert len(list(client.scan_iter("rt:{u1}:once:*"))) == 2
