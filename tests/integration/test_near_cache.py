"""The near cache on a real Redis (adapters/cache.py NearQueryCache over RedisQueryCache, its
bumps announced on a feed): a repeated read costs no round trip; a write on any instance is
seen by every other instance's very next read, with no wait."""

from __future__ import annotations

import pytest
import redis

from devstack.ports import free_port
from valorize.adapters.cache import BUMPED, NearQueryCache, RedisQueryCache
from valorize.adapters.feeds import own_feed

pytestmark = pytest.mark.integration


def instance(client: redis.Redis) -> NearQueryCache:
    """One instance's cache: its own subscription, as bootstrap builds it."""
    return NearQueryCache(RedisQueryCache(client), own_feed(client, BUMPED))


def test_a_repeated_read_costs_no_round_trip(
    client: redis.Redis, request: pytest.FixtureRequest
) -> None:
    cache = instance(client)
    body = '{"name":"Café ☕","amount":123}'.encode()
    assert cache.get_or_render("u1", "k", lambda: body) == (body, "miss")
    sent: list[object] = request.getfixturevalue("round_trips")  # counted from here on
    for _ in range(10):
        assert cache.get_or_render("u1", "k", lambda: b"?") == (body, "hit")
    assert sent == []


def test_a_write_on_one_instance_is_seen_by_the_others_next_read(client: redis.Redis) -> None:
    a, b, c = instance(client), instance(client), instance(client)
    # No sleep anywhere: the bump returns once Redis has written its announcement to every
    # subscriber (adapters/feeds.py `delivered`), and each read applies what is there first.
    for n in range(200):
        for reader in (a, b):
            assert reader.get_or_render("u1", "k", lambda n=n: b"%d" % n)[0] == b"%d" % n
            assert reader.get_or_render("u1", "k", lambda: b"?") == (b"%d" % n, "hit")
        c.bump("u1")
    # Another user's answers were never touched.
    a.get_or_render("u2", "k", lambda: b"two")
    c.bump("u1")
    assert a.get_or_render("u2", "k", lambda: b"?") == (b"two", "hit")


def test_a_scopes_write_on_one_instance_is_seen_by_the_others_next_read_of_it_only(
    client: redis.Redis, request: pytest.FixtureRequest
) -> None:
    a, worker = instance(client), instance(client)
    assert a.get_or_render("u1", "inbox", lambda: b"0", "notifications") == (b"0", "miss")
    assert a.get_or_render("u1", "dashboard", lambda: b"D") == (b"D", "miss")
    for n in range(1, 50):
        worker.bump("u1", "notifications")  # the notify worker stored one
        assert a.get_or_render("u1", "inbox", lambda n=n: b"%d" % n, "notifications") == (
            b"%d" % n,
            "miss",
        )
    sent: list[object] = request.getfixturevalue("round_trips")
    # The ledger's answer stayed in memory through all of it: no round trip.
    assert a.get_or_render("u1", "dashboard", lambda: b"?") == (b"D", "hit")
    assert sent == []


def test_without_its_feed_an_instance_keeps_nothing_in_memory(client: redis.Redis) -> None:
    nowhere = redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    cache = NearQueryCache(RedisQueryCache(client), own_feed(nowhere, BUMPED, retry_seconds=60))
    assert cache.get_or_render("u1", "k", lambda: b"1") == (b"1", "miss")
    # Served by Redis (one round trip), as without a near cache: never from memory, which
    # a bump it cannot hear about would leave stale.
    assert cache.get_or_render("u1", "k", lambda: b"?") == (b"1", "hit")
    RedisQueryCache(client).bump("u1")
    assert cache.get_or_render("u1", "k", lambda: b"2") == (b"2", "miss")
