"""The query cache on a real Redis (adapters/cache.py): a hit is one round trip that returns
the stored bytes as they are; a bump makes every answer of that user a miss; a burst of
identical misses renders once; with Redis gone, reads bypass it."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
import redis

from devstack.ports import free_port
from valorize.adapters.cache import BUMP_FAILED, RedisQueryCache

pytestmark = pytest.mark.integration


def test_a_hit_is_one_round_trip_returning_the_stored_bytes(
    client: redis.Redis, request: pytest.FixtureRequest
) -> None:
    cache = RedisQueryCache(client)
    body = '{"name":"Café ☕","amount":123}'.encode()
    assert cache.get_or_render("u1", "k", lambda: body) == (body, "miss")
    sent: list[object] = request.getfixturevalue("round_trips")  # counted from here on
    renders: list[int] = []
    for _ in range(10):
        assert cache.get_or_render("u1", "k", lambda: renders.append(1) or b"?") == (body, "hit")
    assert sent == ["EVALSHA"] * 10  # one round trip each
    assert renders == []


def test_a_bump_invalidates_only_that_users_answers(client: redis.Redis) -> None:
    cache = RedisQueryCache(client)
    cache.get_or_render("u1", "k", lambda: b"1")
    cache.get_or_render("u2", "k", lambda: b"2")
    cache.bump("u1")
    assert cache.get_or_render("u1", "k", lambda: b"1b") == (b"1b", "miss")
    assert cache.get_or_render("u1", "k", lambda: b"?") == (b"1b", "hit")
    assert cache.get_or_render("u2", "k", lambda: b"?") == (b"2", "hit")


def test_a_bump_of_one_scope_keeps_the_other_scopes_answers(
    client: redis.Redis, request: pytest.FixtureRequest
) -> None:
    cache = RedisQueryCache(client)
    cache.get_or_render("u1", "ledger", lambda: b"L")
    cache.get_or_render("u1", "inbox", lambda: b"N", "notifications")
    cache.get_or_render("u1", "rows", lambda: b"I", "imports")
    cache.bump("u1", "imports")  # an import's progress tick
    assert cache.get_or_render("u1", "rows", lambda: b"I2", "imports") == (b"I2", "miss")
    sent: list[object] = request.getfixturevalue("round_trips")
    assert cache.get_or_render("u1", "ledger", lambda: b"?") == (b"L", "hit")
    assert cache.get_or_render("u1", "inbox", lambda: b"?", "notifications") == (b"N", "hit")
    assert sent == ["EVALSHA"] * 2  # a scope's hit is one round trip too
    cache.bump("u1")  # a ledger write: the inbox stays
    assert cache.get_or_render("u1", "ledger", lambda: b"L2") == (b"L2", "miss")
    assert cache.get_or_render("u1", "inbox", lambda: b"?", "notifications") == (b"N", "hit")
    assert client.get("cache:u1:v") == b"1" and client.get("cache:u1:v:imports") == b"1"


def test_a_burst_of_identical_misses_renders_once(client: redis.Redis) -> None:
    cache = RedisQueryCache(client, wait=2.0)
    rendered: list[int] = []
    start = threading.Barrier(8)
    answers: list[tuple[bytes, str]] = []

    def render() -> bytes:
        rendered.append(1)
        time.sleep(0.2)
        return b"slow"

    def read() -> None:
        start.wait()
        answers.append(cache.get_or_render("u1", "burst", render))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rendered) == 1
    assert sorted(answers) == [(b"slow", "hit")] * 7 + [(b"slow", "miss")]


def test_without_redis_reads_bypass_it() -> None:
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    cache = RedisQueryCache(nowhere, breaker_seconds=60)
    assert cache.get_or_render("u1", "k", lambda: b"x") == (b"x", "bypass")
    started = time.monotonic()
    assert cache.get_or_render("u1", "k", lambda: b"y") == (b"y", "bypass")
    assert time.monotonic() - started < 0.1  # the breaker: no second timeout



def test_a_bump_that_fails_is_logged_at_error_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bump that cannot reach Redis leaves the user's cached answers as they were (other
    instances may serve them until their TTL): that is dropped work, not a quiet detail."""
    nowhere = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    cache = RedisQueryCache(nowhere, breaker_seconds=60)
    with caplog.at_level(logging.ERROR):
        cache.bump("u1", "rules")
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    entry = getattr(record, "entry", {})
    assert entry == {"valorize_event": BUMP_FAILED, "user_id": "u1", "scope": "rules"}
    json.dumps(entry)
