"""Verified tokens kept in memory (service/auth.py TokenCache): a hit costs no lookup, a
revocation announced on the feed is applied before the next lookup, and nothing is served
from memory while the feed is down."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.fakes.security import LocalRevocations
from tests.unit.conftest import World
from tests.unit.test_auth_service import register
from valorize.domain.errors import Unauthorized
from valorize.domain.model import ApiToken
from valorize.service.auth import StoredToken, TokenCache
from valorize.service.requests import CreateToken

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def stored(token_id: str) -> StoredToken:
    return ApiToken(id=token_id, user_id="u", name="t", created_at=NOW), "hash"


class Loads:
    """A loader that counts its calls and can revoke a token while it is being loaded."""

    def __init__(self, feed: LocalRevocations) -> None:
        self.feed = feed
        self.calls = 0
        self.revoked: set[str] = set()
        self.revoke_during_load: str | None = None

    def __call__(self, token_id: str) -> StoredToken | None:
        self.calls += 1
        found = None if token_id in self.revoked else stored(token_id)
        if self.revoke_during_load is not None:
            # Revoked (and announced) after this load read the token, before it returns.
            self.revoked.add(self.revoke_during_load)
            self.feed.announce(self.revoke_during_load)
            self.revoke_during_load = None
        return found


@pytest.fixture
def feed() -> LocalRevocations:
    return LocalRevocations()


@pytest.fixture
def loads(feed: LocalRevocations) -> Loads:
    return Loads(feed)


def test_a_kept_token_costs_no_lookup(feed: LocalRevocations, loads: Loads) -> None:
    cache = TokenCache(loads, feed, ttl=60)
    assert [cache.get("a") for _ in range(100)] == [stored("a")] * 100
    assert loads.calls == 1


def test_a_revocation_applies_before_the_next_lookup(feed: LocalRevocations, loads: Loads) -> None:
    cache = TokenCache(loads, feed, ttl=60)
    cache.get("a")
    loads.revoked.add("a")
    feed.announce("a")
    assert cache.get("a") is None
    assert cache.get("b") == stored("b")


def test_a_token_revoked_while_it_loads_is_not_kept(feed: LocalRevocations, loads: Loads) -> None:
    cache = TokenCache(loads, feed, ttl=60)
    loads.revoke_during_load = "a"
    assert cache.get("a") == stored("a")  # read before the revocation was stored
    assert cache.get("a") is None


def test_nothing_is_served_from_memory_while_the_feed_is_down(
    feed: LocalRevocations, loads: Loads
) -> None:
    cache = TokenCache(loads, feed, ttl=60)
    cache.get("a")
    feed.live = False
    for _ in range(3):
        cache.get("a")
    assert loads.calls == 4


def test_entries_expire_after_the_ttl(feed: LocalRevocations, loads: Loads) -> None:
    now = [0.0]
    cache = TokenCache(loads, feed, ttl=60, timer=lambda: now[0])
    cache.get("a")
    now[0] = 59.0
    cache.get("a")
    assert loads.calls == 1
    now[0] = 61.0
    cache.get("a")
    assert loads.calls == 2


def test_ttl_zero_keeps_nothing(feed: LocalRevocations, loads: Loads) -> None:
    cache = TokenCache(loads, feed, ttl=0)
    cache.get("a")
    cache.get("a")
    assert loads.calls == 2


def test_the_cache_is_bounded(feed: LocalRevocations, loads: Loads) -> None:
    cache = TokenCache(loads, feed, ttl=60, size=2)
    for token_id in ("a", "b", "c", "a"):
        cache.get(token_id)
    assert loads.calls == 4


def test_the_first_to_expire_goes_first(feed: LocalRevocations, loads: Loads) -> None:
    now = [0.0]
    cache = TokenCache(loads, feed, ttl=60, size=2, timer=lambda: now[0])
    cache.get("a")
    now[0] = 30.0
    cache.get("b")
    now[0] = 61.0
    cache.get("a")  # expired: loaded and kept again, now the last to expire
    cache.get("c")  # full: "b" goes
    assert loads.calls == 4
    cache.get("a")
    assert loads.calls == 4
    cache.get("b")
    assert loads.calls == 5


# --- through AuthService ----------------------------------------------------------------------


def test_authenticating_again_reads_no_token(world: World) -> None:
    _, token = register(world)
    world.auth.authenticate(token)
    reads = []
    original = world.user_store.get_token
    world.user_store.get_token = lambda token_id: reads.append(token_id) or original(token_id)
    world.auth.tokens.load = world.user_store.get_token
    for _ in range(10):
        world.auth.authenticate(token)
    assert reads == []


def test_a_wrong_secret_is_refused_even_for_a_kept_token(world: World) -> None:
    _, token = register(world)
    world.auth.authenticate(token)
    with pytest.raises(Unauthorized):
        world.auth.authenticate(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))


def test_revoking_announces_and_stops_the_kept_token(world: World) -> None:
    user_id, _ = register(world)
    issued = world.auth.create_token(user_id, CreateToken(name="ci"))
    world.auth.authenticate(issued.plaintext)
    world.auth.revoke_token(user_id, issued.token.id)
    assert world.revocations.announced == [issued.token.id]
    with pytest.raises(Unauthorized, match="revoked"):
        world.auth.authenticate(issued.plaintext)
