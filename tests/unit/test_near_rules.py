"""NearRules with a scripted feed: what it keeps, and a read that raced a change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis

from tests.fakes.rules import InMemoryRules
from valorize.adapters.near_rules import NearRules
from valorize.domain.rules import AmountBetween, Rule, SetCategory

NOW = datetime(2025, 5, 1, tzinfo=UTC)


class Feed:
    """Live; announcements handed to the next sync."""

    def __init__(self) -> None:
        self.arrived: list[str] = []
        self.live = True

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        while self.arrived:
            forget(self.arrived.pop(0))
        return self.live


class NoRedis(redis.Redis):
    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, channel: object, message: object) -> int:  # type: ignore[override]
        self.published.append(str(message))
        return 1

    def ping(self, **kwargs: object) -> bool:  # type: ignore[override]
        return True


def rule(rule_id: str) -> Rule:
    return Rule(rule_id, "R", 0, (AmountBetween(1, None),), (SetCategory("c"),), NOW, NOW)


def test_a_read_that_raced_a_change_does_not_keep_what_it_read() -> None:
    feed = Feed()
    store = InMemoryRules()
    near = NearRules(store, NoRedis(), feed)
    read = store.list_rules

    def racing(user_id: str) -> list[Rule]:
        found = read(user_id)
        # Another instance saves a rule and announces it while this read is on its way; the
        # announcement is applied by this instance's next sync, here within this read.
        InMemoryRules(store.memory).add_rule(user_id, lambda _: rule("r1"))
        feed.arrived.append(user_id)
        feed.sync(near._forget, near._reset)  # the feed delivering it
        return found

    store.list_rules = racing  # type: ignore[method-assign]
    assert near.list_rules("u1") == []
    store.list_rules = read  # type: ignore[method-assign]
    assert [x.id for x in near.list_rules("u1")] == ["r1"]


def test_writes_are_announced_even_when_they_fail_and_reads_return_copies() -> None:
    client = NoRedis()
    near = NearRules(InMemoryRules(), client, Feed())
    near.add_rule("u1", lambda _: rule("r1"))
    assert near.delete_rule("u1", "nope") is False
    assert client.published == ["u1", "u1"]
    kept = near.list_rules("u1")
    kept.clear()
    assert [x.id for x in near.list_rules("u1")] == ["r1"]


def test_a_feed_down_reads_the_store_and_a_reset_drops_everything() -> None:
    feed = Feed()
    store = InMemoryRules()
    near = NearRules(store, NoRedis(), feed)
    assert near.list_rules("u1") == []
    store.add_rule("u1", lambda _: rule("r1"))  # unannounced: kept until a reset or the TTL
    assert near.list_rules("u1") == []
    feed.live = False
    assert [x.id for x in near.list_rules("u1")] == ["r1"]
    feed.live = True
    near._reset()  # as the feed does on resubscribing
    store.add_rule("u1", lambda _: rule("r2"))
    assert [x.id for x in near.list_rules("u1")] == ["r1", "r2"]
