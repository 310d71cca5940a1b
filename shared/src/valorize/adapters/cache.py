"""Cache-aside for read answers, in Redis: the rendered JSON of a read, kept per user.

Keys carry a per-user version (`cache:{uid}:v`), and every write bumps it, so invalidating
everything a user can see is one INCR and stale entries simply age out (TTL). A lookup is one
round trip: a small Lua script reads the version and the entry under it together, and on a
miss takes a short lock in the same call so a burst of identical misses computes once
(stampede protection; the others wait briefly for the value). A hit is the stored bytes,
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

from valorize.service.ports.cache import Feed, Outcome

log = logging.getLogger(__name__)

# Where bumps are announced to every instance (adapters/feeds.py).
BUMPED = "valorize:cache:bumped"

# KEYS[1]: the user's version; ARGV: the entry prefix, the key, the lock's lifetime (ms).
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

    def bump(self, user_id: str) -> None:
        """Invalidate every cached read of this user, and announce it to the instances'
        near caches (NearQueryCache) in the same transaction: both happen or neither."""
        try:
            pipe = self.client.pipeline()
            pipe.incr(f"cache:{user_id}:v")
            # Longer than any entry's TTL: a lost version only re-keys entries that expired.
            pipe.expire(f"cache:{user_id}:v", self.ttl * 4)
            pipe.publish(BUMPED, user_id)
            pipe.execute()
        except redis.RedisError as e:
            self._trip(e)

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes]
    ) -> tuple[bytes, Outcome]:
        if not self._available():
            return render(), "bypass"
        try:
            version, value, locked = self._lookup(
                keys=[f"cache:{user_id}:v"], args=[f"cache:{user_id}:", key, self.lock_ms]
            )
            entry = f"cache:{user_id}:{_text(version)}:{key}"
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
    """Per user, a number that changes whenever the user's kept answers must be dropped.

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
    published before this request began already is (Redis writes it to the subscribers before
    it answers the writer). While the feed is down nothing is served from memory, and when it
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

    def bump(self, user_id: str) -> None:
        # Dropped here at once (this instance's next read must see the write), announced to
        # the others by the remote bump.
        self._forget(user_id)
        self.remote.bump(user_id)

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes]
    ) -> tuple[bytes, Outcome]:
        if not self.feed.sync(self._forget, self._reset):
            return self.remote.get_or_render(user_id, key, render)
        with self._lock:
            generation = self._generations.of(user_id)
            kept = self._answers.get((user_id, key))
        if kept is not None and kept[0] == generation:
            return kept[1], "hit"
        body, outcome = self.remote.get_or_render(user_id, key, render)
        if outcome != "bypass":
            with self._lock:
                # Not if the user's answers were dropped meanwhile: this one may predate it.
                if self._generations.of(user_id) == generation:
                    self._answers[(user_id, key)] = (generation, body)
        return body, outcome

    def _forget(self, user_id: str) -> None:
        with self._lock:
            self._generations.bump(user_id)

    def _reset(self) -> None:
        with self._lock:
            self._generations.reset()
            self._answers.clear()


class NoCache:
    """For tests and tools that must always read the source."""

    def bump(self, user_id: str) -> None:
        pass

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes]
    ) -> tuple[bytes, Outcome]:
        return render(), "bypass"
