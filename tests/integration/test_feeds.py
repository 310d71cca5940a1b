"""One instance's announcement channels on one subscription (adapters/feeds.py RedisFeeds, as
bootstrap builds it): each announcement reaches its own channel's user, a request reads the
subscription once, and a broken subscription resets every channel's user."""

from __future__ import annotations

import select

import pytest
import redis

from tests.integration.test_revocations import Seen, until
from valorize.adapters.feeds import RedisFeeds, delivered

pytestmark = pytest.mark.integration

TOKENS, BUMPS = "test:tokens", "test:bumps"


def subscribed(client: redis.Redis) -> tuple[RedisFeeds, Seen, Seen]:
    feeds = RedisFeeds(client, [TOKENS, BUMPS])
    tokens, bumps = Seen(), Seen()
    assert feeds.channel(TOKENS).sync(tokens.forget, tokens.reset)
    assert feeds.channel(BUMPS).sync(bumps.forget, bumps.reset)
    return feeds, tokens, bumps


def test_both_channels_share_one_subscription_and_keep_apart(client: redis.Redis) -> None:
    feeds, tokens, bumps = subscribed(client)
    assert client.pubsub_numsub(TOKENS, BUMPS) == [(TOKENS.encode(), 1), (BUMPS.encode(), 1)]
    assert len(client.client_list(_type="pubsub")) == 1
    client.publish(TOKENS, "t1")
    client.publish(BUMPS, "u1")
    client.publish(TOKENS, "t2")
    delivered(client)
    # One read, by either channel, applies everything that arrived, each to its own user.
    assert feeds.channel(BUMPS).sync(bumps.forget, bumps.reset)
    assert (tokens.forgotten, bumps.forgotten) == (["t1", "t2"], ["u1"])
    # The subscription's first read reset what the user that synced first had kept;
    # nothing since.
    assert (tokens.resets, bumps.resets) == (1, 0)


def test_a_request_reads_the_subscription_once(client: redis.Redis) -> None:
    feeds, tokens, bumps = subscribed(client)
    with feeds.per_request():
        assert feeds.channel(TOKENS).sync(tokens.forget, tokens.reset)
        # Published after this request began: applied by the next request, not this one.
        client.publish(BUMPS, "u1")
        delivered(client)  # as every announcer does: it is in the socket now
        assert feeds.channel(BUMPS).sync(bumps.forget, bumps.reset)
        assert bumps.forgotten == []
    with feeds.per_request():
        assert feeds.channel(BUMPS).sync(bumps.forget, bumps.reset)
        assert bumps.forgotten == ["u1"]
    # Outside a request every sync reads.
    client.publish(BUMPS, "u2")
    delivered(client)
    assert feeds.channel(TOKENS).sync(tokens.forget, tokens.reset)
    assert bumps.forgotten == ["u1", "u2"]


def test_a_broken_subscription_resets_every_channel(client: redis.Redis) -> None:
    feeds, tokens, bumps = subscribed(client)
    (pubsub,) = client.client_list(_type="pubsub")
    client.client_kill_filter(_id=pubsub["id"])
    assert not feeds.channel(TOKENS).sync(tokens.forget, tokens.reset)
    assert (tokens.resets, bumps.resets) == (2, 1)


def test_without_poll_every_read_takes_the_lock(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """eventlet's monkey-patching removes select.poll (realtime_server's workers): the feeds
    still work, reading under the lock as before."""
    monkeypatch.delattr(select, "poll")
    feeds, tokens, bumps = subscribed(client)
    client.publish(TOKENS, "t1")
    assert until(lambda: feeds.channel(BUMPS).sync(bumps.forget, bumps.reset) and tokens.forgotten)
    assert tokens.forgotten == ["t1"]
