"""Cache-aside for read queries, in Redis.

Keys carry a per-user version (`cache:{uid}:v`), and every write bumps it, so invalidating
everything a user can see is one INCR and stale entries simply age out (TTL). A miss takes a
short lock so a burst of identical misses computes once (stampede protection); the others
wait briefly for the value. Redis is never the source of truth: when it is down or slow, the
breaker opens and reads go straight to Firestore until it recovers by itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

log = logging.getLogger(__name__)


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
        self._open_until = 0.0
        self._lock = threading.Lock()
        # The outcome of the last lookup on this thread ("hit", "miss", "bypass"), for the
        # X-Cache response header and the tests.
        self.last = threading.local()

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

    def get_or_compute(self, user_id: str, key: str, compute: Callable[[], Any]) -> Any:
        if not self._available():
            self.last.outcome = "bypass"
            return compute()
        try:
            version = self.client.get(f"cache:{user_id}:v") or b"0"
            if isinstance(version, bytes):
                version = version.decode()
            full = f"cache:{user_id}:{version}:{key}"
            cached = self.client.get(full)
            if cached is not None:
                self.last.outcome = "hit"
                return json.loads(cached)
            if not self.client.set(full + ":lock", b"1", nx=True, px=self.lock_ms):
                cached = self._await(full)
                if cached is not None:
                    self.last.outcome = "hit"
                    return json.loads(cached)
        except redis.RedisError as e:
            self._trip(e)
            self.last.outcome = "bypass"
            return compute()
        self.last.outcome = "miss"
        value = compute()
        try:
            pipe = self.client.pipeline()
            pipe.set(full, json.dumps(value, separators=(",", ":")), ex=self.ttl)
            pipe.delete(full + ":lock")
            pipe.execute()
        except redis.RedisError as e:
            self._trip(e)
        return value

    def _await(self, key: str) -> bytes | None:
        """Someone else is computing this key: give them a moment rather than pile on."""
        deadline = time.monotonic() + self.wait
        while time.monotonic() < deadline:
            time.sleep(0.02)
            value = self.client.get(key)
            if value is not None:
                return value if isinstance(value, bytes) else value.encode()
        return None


class NoCache:
    """For tests and tools that must always read the source."""

    def __init__(self) -> None:
        self.last = threading.local()

    def bump(self, user_id: str) -> None:
        pass

    def get_or_compute(self, user_id: str, key: str, compute: Callable[[], Any]) -> Any:
        self.last.outcome = "bypass"
        return compute()
