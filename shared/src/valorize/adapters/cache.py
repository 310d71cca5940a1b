"""Cache-aside for read answers, in Redis: the rendered JSON of a read, kept per user.

Keys carry a per-user version of the read's scope (service/ports/cache.py `Scope`: the ledger's
is `cache:{uid}:v`, another's `cache:{uid}:v:{scope}`), and every write bumps its scope's, so
invalidating everything of a scope a user can see is one INCR and stale entries simply age
out (TTL); a bump of one scope leaves the others' entries valid. A lookup is one round trip:
a small Lua script reads the version and the entry under it together, and on a miss takes a
short lock in the same call so a burst of identical misses computes once (stampede
protection; the others wait briefly for the value). A hit is the stored bytes,
written out as they are: nothing is decoded or encoded again. Redis is never the source of
truth: when it is down or slow, the breaker opens and reads go straight to Firestore until it
recovers by itself.

The script builds its entry keys from the version it read, which Redis Cluster does not allow
(every key must be declared); Memorystore for Redis (one primary) runs it as it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis
from cachetools import LRUCache, TTLCache

from valorize.adapters.feeds import delivered
from valorize.service.ports.cache import LEDGER, SCOPES, Feed, Outcome, Scope

log = logging.getLogger(__name__)

# Where bumps are announced to every instance (adapters/feeds.py): "<uid>" for the ledger
# (as before scopes existed, so instances of either release understand each other's ledger
# bumps during a rollout), "<uid> <scope>" for another scope (ids never hold a space).
BUMPED = "valorize:cache:bumped"
# The marker of a bump that failed (infra/cdktf/config.py DROPPED_MARKERS): the user's cached
# answers of that scope stay as they were until their TTL.
BUMP_FAILED = "cache_bump_failed"


def _keys(user_id: str, scope: Scope) -> tuple[str, str]:
    """The scope's version key and its entries' prefix (the version and the key follow).
    The ledger's are the keys used before scopes existed; no other scope's can collide with
    them (a ledger entry's version, right after the user id, is a number)."""
    if scope == LEDGER:
        return f"cache:{user_id}:v", f"cache:{user_id}:"
    return f"cache:{user_id}:v:{scope}", f"cache:{user_id}:{scope}:"


def announcement(user_id: str, scope: Scope) -> str:
    return user_id if scope == LEDGER else f"{user_id} {scope}"


def announced(message: str) -> tuple[str, Scope]:
    """The user and the scope of a bump's announcement."""
    user_id, _, scope = message.partition(" ")
    for known in SCOPES:
        if scope == known:
            return user_id, known
    # Unknown (a later release's scope): the ledger's too, which is always safe to drop.
    return user_id, LEDGER


# KEYS[1]: the user's version of the scope; ARGV: the scope's entry prefix, the key, the lock's
# lifetime (ms).
# Answers {version, entry or nil, 1 when this caller got the lock}.
LOOKUP = """
local version = redis.call('GET', KEYS[1]) or '0'
local entry = ARGV[1] .. version .. ':' .. ARGV[2]
local value = redis.call('GET', entry)
if value then return {version, value, 0} end
local locked = redis.call('SET', entry .. ':lock', '1', 'NX', 'PX', ARGV[3])
return {version, false, locked and 1 or 0}
"""


class RedisQueryCache:
    def __init__(
        self,
        client: redis.Redis,
        ttl: int = 300,
        lock_ms: int = 3000,
        wait: float = 0.25,
        breaker_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.lock_ms = lock_ms
        self.wait = wait
        self.breaker_seconds = breaker_seconds
        self._lookup = client.register_script(LOOKUP)
        self._open_until = 0.0
        self._lock = threading.Lock()

    # --- breaker ------------------------------------------------------------------------------

    def _available(self) -> bool:
        return time.monotonic() >= self._open_until

    def _trip(self, error: Exception) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.breaker_seconds
        log.warning("redis cache unavailable, bypassing for %.0fs: %s", self.breaker_seconds, error)

    # --- API ----------------------------------------------------------------------------------

    def bump(self, user_id: str, scope: Scope = LEDGER) -> None:
        """Invalidate every cached read of this user in the scope, and announce it to the
        instances' near caches (NearQueryCache) in the same transaction: both happen or
        neither."""
        version, _ = _keys(user_id, scope)
        try:
            pipe = self.client.pipeline()
            pipe.incr(version)
            # Longer than any entry's TTL: a lost version only re-keys entries that expired.
            pipe.expire(version, self.ttl * 4)
            pipe.publish(BUMPED, announcement(user_id, scope))
            pipe.execute()
            delivered(self.client)
        except redis.RedisError as e:
            log.error(
                "cache bump failed; the cached answers stay until their TTL (%d s): %s",
                self.ttl,
                e,
                extra={
                    "entry": {"valorize_event": BUMP_FAILED, "user_id": user_id, "scope": scope}
                },
            )
            self._trip(e)

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes], scope: Scope = LEDGER
    ) -> tuple[bytes, Outcome]:
        if not self._available():
            return render(), "bypass"
        version_key, prefix = _keys(user_id, scope)
        try:
            version, value, locked = self._lookup(
                keys=[version_key], args=[prefix, key, self.lock_ms]
            )
            entry = f"{prefix}{_text(version)}:{key}"
            if value is None and not locked:
                value = self._await(entry)
        except redis.RedisError as e:
            self._trip(e)
            return render(), "bypass"
        if value is not None:
            return bytes(value), "hit"
        rendered = render()
        try:
            pipe = self.client.pipeline()
            pipe.set(entry, rendered, ex=self.ttl)
            pipe.delete(entry + ":lock")
            pipe.execute()
        except redis.RedisError as e:
            self._trip(e)
        return rendered, "miss"

    def _await(self, key: str) -> bytes | None:
        """Someone else is computing this key: give them a moment rather than pile on."""
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            time.sleep(0.02)
            value = self.client.get(key)
            if value is not None:
                return value if isinstance(value, bytes) else str(value).encode()
        return None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Generations:
    """Per user (and scope), a number that changes whenever the user's kept answers (of the
    scope) must be dropped.

    Bounded (least recently bumped users are forgotten), without ever making a dropped
    answer valid again: a user without a number of their own has the `floor`, which is raised
    past every number forgotten, so answers kept under one no longer match."""

    def __init__(self, size: int) -> None:
        self._numbers = _Evicting(size, self._evicted)
        self._last = 0
        self._floor = 0

    def _evicted(self, number: int) -> None:
        self._floor = max(self._floor, number)

    def of(self, user_id: str) -> int:
        return self._numbers.get(user_id, self._floor)

    def bump(self, user_id: str) -> None:
        self._last += 1
        self._numbers[user_id] = self._last

    def reset(self) -> None:
        self._last += 1
        self._floor = self._last
        self._numbers.clear()


class _Evicting(LRUCache[str, int]):
    def __init__(self, size: int, evicted: Callable[[int], None]) -> None:
        super().__init__(size)
        self._on_evict = evicted

    def popitem(self) -> tuple[str, int]:
        key, value = super().popitem()
        self._on_evict(value)
        return key, value


class NearQueryCache:
    """The Redis cache's answers also kept in the instance's memory, so a repeated read costs
    no round trip at all.

    Every bump is announced on a Redis feed (RedisQueryCache.bump publishes in the same
    transaction as the version's INCR) and applied before each lookup, as token revocations
    are (adapters/feeds.py): the feed is read from the socket's buffer, where an announcement
    is by the time the writer's client could send another request (see feeds.py for when it
    is written). While the feed is down nothing is served from memory, and when it
    is back everything kept is dropped. Answers are kept `ttl` seconds at most, within a
    budget of `max_bytes`."""

    def __init__(
        self,
        remote: RedisQueryCache,
        feed: Feed,
        ttl: float = 60.0,
        max_bytes: int = 32 * 1024 * 1024,
        users: int = 100_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.remote = remote
        self.feed = feed
        self._answers: TTLCache[tuple[str, str], tuple[int, bytes]] = TTLCache(
            max_bytes, ttl, timer=timer, getsizeof=lambda kept: len(kept[1]) + 200
        )
        self._generations = _Generations(users)
        self._lock = threading.Lock()

    def bump(self, user_id: str, scope: Scope = LEDGER) -> None:
        # Dropped here at once (this instance's next read must see the write), announced to
        # the others by the remote bump.
        self._forget(announcement(user_id, scope))
        self.remote.bump(user_id, scope)

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes], scope: Scope = LEDGER
    ) -> tuple[bytes, Outcome]:
        if not self.feed.sync(self._forget, self._reset):
            return self.remote.get_or_render(user_id, key, render, scope)
        # A generation per user and scope, named as its bumps are announced.
        name = announcement(user_id, scope)
        with self._lock:
            generation = self._generations.of(name)
            kept = self._answers.get((name, key))
        if kept is not None and kept[0] == generation:
            return kept[1], "hit"
        body, outcome = self.remote.get_or_render(user_id, key, render, scope)
        if outcome != "bypass":
            with self._lock:
                # Not if the scope's answers were dropped meanwhile: this one may predate it.
                if self._generations.of(name) == generation:
                    self._answers[(name, key)] = (generation, body)
        return body, outcome

    def _forget(self, message: str) -> None:
        # Through `announced`: a scope this release does not know drops the ledger's answers.
        name = announcement(*announced(message))
        with self._lock:
            self._generations.bump(name)

    def _reset(self) -> None:
        with self._lock:
            self._generations.reset()
            self._answers.clear()


class NoCache:
    """For tests and tools that must always read the source."""

    def bump(self, user_id: str, scope: Scope = LEDGER) -> None:
        pass

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes], scope: Scope = LEDGER
    ) -> tuple[bytes, Outcome]:
        return render(), "bypass"
