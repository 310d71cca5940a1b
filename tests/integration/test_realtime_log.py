"""The realtime event log and publisher against a real Redis (its own, on a free port)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import socketio

from devstack.services import RedisServer
from valorize.adapters.realtime import CHANNEL, EventLog, RealtimePublisher

pytestmark = pytest.mark.integration


class Subscriber:
    """Collects what is published on the Socket.IO channel, decoded."""

    def __init__(self, client: redis.Redis, channel: str = CHANNEL) -> None:
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.pubsub.get_message(timeout=1)  # the subscribe confirmation

    def take(self, count: int, timeout: float = 5) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                got.append(json.loads(message["data"]))
        return got


def test_append_logs_and_publishes_what_a_socketio_redis_manager_would(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    moment = datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=UTC)
    log = EventLog(client, now=lambda: moment)
    subscriber = Subscriber(client)
    seq = log.append("u1", "transaction.created", {"id": "t1", "amount": -150})
    ours = subscriber.take(1)[0]

    envelope = {"seq": seq, "ts": "2026-11-27T12:00:00.123Z", "data": {"id": "t1", "amount": -150}}
    reference = socketio.RedisManager(redis_server.url, write_only=True)
    reference.emit("transaction.created", envelope, room="user:u1")
    theirs = subscriber.take(1)[0]
    # Everything but the sender id matches python-socketio's own message, field for field.
    assert ours.pop("host_id") != theirs.pop("host_id")
    assert ours == theirs
    assert ours["room"] == "user:u1" and ours["data"] == [envelope]

    caught_up = log.since("u1", seq - 1)
    assert [(e.event, e.envelope) for e in caught_up.events] == [("transaction.created", envelope)]


def test_sequence_starts_above_any_earlier_one_and_counts_by_one(client: redis.Redis) -> None:
    log = EventLog(client)
    before = int(time.time()) * 1000
    first = log.append("u1", "e", {})
    # 13 digits: exact in Lua's number formatting and in JavaScript.
    assert before < first < 2**53 and len(str(first)) == 13
    assert [log.append("u1", "e", {}) for _ in range(3)] == [first + 1, first + 2, first + 3]
    assert log.append("u2", "e", {}) != first + 4  # per user
    assert log.latest("u1") == first + 3

    # Redis loses the counter (restart without persistence): the next numbers are still higher
    # than anything a client saw, so clients notice the jump instead of ignoring new events.
    client.delete("rt:{u1}:seq")
    time.sleep(1.05)
    restarted = log.append("u1", "e", {})
    assert restarted > first + 3
    assert log.since("u1", first + 3).reset == "window_exceeded"
    # The stale log went with the counter.
    assert [e.seq for e in log.since("u1", restarted - 1).events] == [restarted]


def test_catch_up_window_and_resets(client: redis.Redis) -> None:
    log = EventLog(client, max_events=5, ttl_seconds=3600)
    seqs = [log.append("u1", "n", {"n": n}) for n in range(8)]
    assert log.since("u1", None).latest_seq == seqs[-1]
    assert log.since("u1", seqs[-1]).events == ()
    assert log.since("u1", seqs[-1]).reset is None

    inside = log.since("u1", seqs[2])  # the last 5 are kept: seqs[3:]
    assert inside.reset is None and inside.latest_seq == seqs[-1]
    assert [e.envelope["data"]["n"] for e in inside.events] == [3, 4, 5, 6, 7]

    outside = log.since("u1", seqs[1])
    assert (outside.reset, outside.latest_seq, outside.events) == ("window_exceeded", seqs[-1], ())
    assert log.since("u1", seqs[-1] + 10).reset == "sequence_restarted"
    # Every key expires with the window.
    for key in ("rt:{u1}:seq", "rt:{u1}:log"):
        assert 3500 < int(client.ttl(key)) <= 3600
    assert client.xlen("rt:{u1}:log") == 5


def test_concurrent_writers_deliver_in_sequence_order(client: redis.Redis) -> None:
    subscriber = Subscriber(client)

    def write(worker: int) -> None:
        log = EventLog(redis.Redis(connection_pool=client.connection_pool))
        for n in range(50):
            log.append("u1", "e", {"worker": worker, "n": n})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    published = [m["data"][0]["seq"] for m in subscriber.take(200)]
    logged = [e.seq for e in EventLog(client).since("u1", published[0] - 1).events]
    assert len(published) == 200
    assert published == logged == list(range(published[0], published[0] + 200))


def test_publisher_is_best_effort_and_fast_when_redis_is_down(
    dead_redis: redis.Redis, client: redis.Redis
) -> None:
    now = [0.0]
    dead = dead_redis
    publisher = RealtimePublisher(EventLog(dead), cooldown=5, clock=lambda: now[0])
    began = time.monotonic()
    assert publisher.publish("u1", "e", {}) is None
    assert publisher.publish("u1", "e", {}) is None  # within the cooldown: not even tried
    assert time.monotonic() - began < 1.0

    # After the cooldown it tries again, and works once Redis is there.
    publisher.log = EventLog(client)
    now[0] = 4.9
    assert publisher.publish("u1", "e", {}) is None
    now[0] = 5.1
    assert isinstance(publisher.publish("u1", "e", {}), int)


def test_append_once_logs_and_publishes_a_key_once(client: redis.Redis) -> None:
    log = EventLog(client)
    subscriber = Subscriber(client)
    first = log.append_once("u1", "notification.created", {"id": "n1"}, key="n1")
    assert first is not None
    # A redelivery of the same notification, and one racing it: neither logs it again.
    assert log.append_once("u1", "notification.created", {"id": "n1"}, key="n1") is None
    other = log.append_once("u1", "notification.created", {"id": "n2"}, key="n2")
    assert other == first + 1
    assert [m["data"][0]["data"]["id"] for m in subscriber.take(3, timeout=1)] == ["n1", "n2"]
    assert client.xlen("rt:{u1}:log") == 2
    # The key lives as long as the log it guards.
    assert 0 < int(client.ttl("rt:{u1}:once:n1")) <= log.ttl_seconds


def test_publish_once_raises_when_redis_is_down_and_ignores_the_breaker(
    dead_redis: redis.Redis, client: redis.Redis
) -> None:
    from valorize.domain.errors import Unavailable

    dead = dead_redis
    publisher = RealtimePublisher(EventLog(dead), cooldown=5, sure_log=EventLog(dead))
    assert publisher.publish("u1", "e", {}) is None  # opens the breaker
    with pytest.raises(Unavailable):
        publisher.publish_once("u1", "e", {}, key="k")
    # A task's push does not wait out the breaker: it is retried by its queue instead.
    publisher.sure_log = EventLog(client)
    assert isinstance(publisher.publish_once("u1", "e", {}, key="k"), int)
    assert publisher.publish_once("u1", "e", {}, key="k") is None
