"""Rules kept in each instance's memory on a real Redis (adapters/near_rules.py): a create
that runs the rules reads them once per instance, and a change saved on any instance is
applied by every other instance's very next read, with no wait."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
import redis

from devstack.ports import free_port
from tests.fakes.rules import InMemoryRules
from valorize.adapters.feeds import own_feed
from valorize.adapters.near_rules import CHANNEL, UNANNOUNCED, NearRules
from valorize.domain.rules import AmountBetween, Rule, SetCategory

pytestmark = pytest.mark.integration

NOW = datetime(2025, 5, 1, tzinfo=UTC)


class Counted(InMemoryRules):
    """The shared store (Firestore's stand-in: the feed is what is under test)."""

    reads = 0

    def list_rules(self, user_id: str) -> list[Rule]:
        Counted.reads += 1
        return super().list_rules(user_id)


def rule(rule_id: str, name: str) -> Rule:
    return Rule(
        id=rule_id,
        name=name,
        position=0,
        conditions=(AmountBetween(1, None),),
        actions=(SetCategory("c1"),),
        created_at=NOW,
        updated_at=NOW,
    )


def instance(client: redis.Redis, store: InMemoryRules) -> NearRules:
    """One instance's rules: its own subscription, as bootstrap builds it."""
    return NearRules(store, client, own_feed(client, CHANNEL))


def names(rules: list[Rule]) -> list[str]:
    return [x.name for x in rules]


def test_rules_are_read_once_and_a_change_anywhere_is_seen_by_the_next_read(
    client: redis.Redis,
) -> None:
    store = Counted()
    a, b, c = instance(client, store), instance(client, store), instance(client, store)
    Counted.reads = 0
    assert a.list_rules("u1") == [] and b.list_rules("u1") == []
    for _ in range(20):
        assert a.list_rules("u1") == [] and b.list_rules("u1") == []
    assert Counted.reads == 2  # one per instance, however many creates
    # No sleep anywhere: a write returns once Redis has written its announcement to every
    # subscriber (adapters/feeds.py `delivered`), and each read applies what is there first.
    for n in range(50):
        c.add_rule("u1", lambda _, n=n: rule(f"r{n}", f"Rule ✓ {n}"))
        for reader in (a, b):
            assert len(reader.list_rules("u1")) == n + 1
    c.update_rule("u1", "r0", lambda r, _: Rule(**{**vars(r), "name": "Renamed"}))
    assert "Renamed" in names(a.list_rules("u1"))
    assert c.delete_rule("u1", "r0") is True
    assert "Renamed" not in names(b.list_rules("u1"))
    # Another user's rules were never dropped.
    a.list_rules("u2")
    c.add_rule("u1", lambda _: rule("r-last", "Last"))
    before = Counted.reads
    a.list_rules("u2")
    assert Counted.reads == before


def test_without_its_feed_an_instance_reads_the_store_every_time(client: redis.Redis) -> None:
    nowhere = redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    store = Counted()
    rules = NearRules(store, client, own_feed(nowhere, CHANNEL, retry_seconds=60))
    Counted.reads = 0
    for _ in range(3):
        assert rules.list_rules("u1") == []
    assert Counted.reads == 3
    # A change made where nothing is kept is seen at once too.
    instance(client, store).add_rule("u1", lambda _: rule("r1", "One"))
    assert names(rules.list_rules("u1")) == ["One"]


def test_a_change_that_cannot_be_announced_is_logged_and_counted(
    client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = redis.Redis(port=free_port(), socket_timeout=0.2, socket_connect_timeout=0.2)
    store = Counted()
    writer = NearRules(store, nowhere, own_feed(client, CHANNEL))
    with caplog.at_level(logging.ERROR):
        writer.add_rule("u1", lambda _: rule("r1", "One"))
    (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    entry = getattr(record, "entry", {})
    assert entry == {"valorize_event": UNANNOUNCED, "user_id": "u1"}
    json.dumps(entry)
    # The writer's own instance sees its write all the same.
    assert names(writer.list_rules("u1")) == ["One"]
