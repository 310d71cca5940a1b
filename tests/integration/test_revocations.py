"""The token revocation feed on a real Redis (adapters/revocations.py): what one instance
announces, every other applies at its next sync; a feed that cannot subscribe reports itself
down, and after an outage it resubscribes and resets what was kept."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import pytest
import redis

from devstack.ports import free_port
from devstack.services import RedisServer
from valorize.adapters.revocations import UNANNOUNCED, RedisRevocationFeed

pytestmark = pytest.mark.integration


class Seen:
    def __init__(self) -> None:
        self.forgotten: list[str] = []
        self.resets = 0

    def forget(self, token_id: str) -> None:
        self.forgotten.append(token_id)

    def reset(self) -> None:
        self.resets += 1


def until(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_every_instance_applies_what_one_announces(client: redis.Redis) -> None:
    instances = [RedisRevocationFeed(client) for _ in range(3)]
    seen = [Seen() for _ in instances]
    assert all(f.sync(s.forget, s.reset) for f, s in zip(instances, seen, strict=True))
    # Subscribing resets: whatever was kept before may have been revoked unheard.
    assert [s.resets for s in seen] == [1, 1, 1]
    instances[0].announce("t1")
    instances[2].announce("t2")
    for feed, s in zip(instances, seen, strict=True):
        assert until(lambda f=feed, s=s: f.sync(s.forget, s.reset) and len(s.forgotten) == 2)
        assert s.forgotten == ["t1", "t2"]
        assert s.resets == 1


def test_a_feed_without_redis_is_down_and_says_what_it_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    feed = RedisRevocationFeed(nowhere, retry_seconds=60)
    seen = Seen()
    assert feed.sync(seen.forget, seen.reset) is False
    # Within the retry delay it does not even try (a request pays one timeout, not each).
    started = time.monotonic()
    assert feed.sync(seen.forget, seen.reset) is False
    assert time.monotonic() - started < 0.1
    with caplog.at_level(logging.ERROR):
        feed.announce("t1")
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    entry = getattr(record, "entry", {})
    assert entry["valorize_event"] == UNANNOUNCED and entry["token_id"] == "t1"
    json.dumps(entry)


def test_after_an_outage_it_resubscribes_and_resets(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    port = free_port()
    server = RedisServer(port, tmp_path_factory.mktemp("redis-outage"))
    server.start()
    server.wait_ready(20)
    client = redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.2)
    feed = RedisRevocationFeed(client, retry_seconds=0.1)
    seen = Seen()
    try:
        assert feed.sync(seen.forget, seen.reset) and seen.resets == 1
        server.stop()
        assert until(lambda: not feed.sync(seen.forget, seen.reset))
        assert seen.resets == 2  # the subscription broke: what was kept is forgotten
        server = RedisServer(port, tmp_path_factory.mktemp("redis-outage-2"))
        server.start()
        server.wait_ready(20)
        assert until(lambda: feed.sync(seen.forget, seen.reset), 5)
        assert seen.resets == 3
        RedisRevocationFeed(client).announce("t9")
        assert until(lambda: feed.sync(seen.forget, seen.reset) and seen.forgotten == ["t9"])
    finally:
        server.stop()


def test_an_announcement_behind_a_health_check_reply_is_not_missed(client: redis.Redis) -> None:
    """redis-py pings an idle subscription and get_message answers None for the reply: a
    drain that stopped at the first None left the revocation behind it unread."""
    checked = redis.Redis(
        connection_pool=redis.ConnectionPool(
            **{**client.connection_pool.connection_kwargs, "health_check_interval": 1}
        )
    )
    feed = RedisRevocationFeed(checked)
    seen = Seen()
    assert feed.sync(seen.forget, seen.reset)
    time.sleep(1.1)
    assert feed.sync(seen.forget, seen.reset)  # idle past the interval: this one pings
    RedisRevocationFeed(client).announce("t1")
    time.sleep(0.2)  # the reply and the announcement have both arrived
    assert feed.sync(seen.forget, seen.reset)
    assert seen.forgotten == ["t1"]
