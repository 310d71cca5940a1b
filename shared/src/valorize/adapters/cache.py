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

from valorize.service.ports.cache import Outcome

log = logging.getLogger(__name__)

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
        """Invalidate every cached read of this user."""
        try:
            pipe = self.client.pipeline()
            pipe.incr(f"cache:{user_id}:v")
            # Longer than any entry's TTL: a lost version only re-keys entries that expired.
            pipe.expire(f"cache:{user_id}:v", self.ttl * 4)
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


class NoCache:
    """For tests and tools that must always read the source."""

    def bump(self, user_id: str) -> None:
        pass

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes]
    ) -> tuple[bytes, Outcome]:
        return render(), "bypass"
