"""Password hashing (argon2id) and the login throttle (Redis)."""

from __future__ import annotations

import contextlib
import hashlib
import logging

import redis
from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)


class Argon2Hasher:
    """argon2id with the library's defaults (RFC 9106 low-memory profile): slow and salted."""

    def __init__(self) -> None:
        self._ph = _Argon2()

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        try:
            return self._ph.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False


class RedisLoginThrottle:
    """At most `limit` failed logins per (email, ip) in `window` seconds.

    Each attempt is counted *before* its password is checked, in the same atomic step that
    reads the count (INCR, the window's EXPIRE and the TTL in one MULTI/EXEC): a burst of
    concurrent logins cannot all read "under the limit" before any has counted, so at most
    `limit` passwords are ever checked per window. A success clears the count.

    Fails open: if Redis is unreachable, logins still work (and an ERROR is logged), because
    locking every user out during a cache outage is worse than briefly losing the throttle.
    """

    def __init__(self, client: redis.Redis, limit: int = 5, window: int = 900) -> None:
        self.client = client
        self.limit = limit
        self.window = window

    @staticmethod
    def _key(key: str) -> str:
        return "login-fail:" + hashlib.sha256(key.encode()).hexdigest()

    def attempt(self, key: str) -> int:
        try:
            pipe = self.client.pipeline(transaction=True)
            k = self._key(key)
            pipe.incr(k)
            pipe.expire(k, self.window, nx=True)
            pipe.ttl(k)
            count, _, ttl = pipe.execute()
        except redis.RedisError:
            # As the rate limits (adapters/rate_limits.py): an ERROR a log-based metric counts.
            log.error(
                "login throttle unavailable (redis); failing open",
                extra={"entry": {"valorize_event": "login_throttle_unavailable"}},
            )
            return 0
        if int(count) <= self.limit:
            return 0
        return max(int(ttl), 1)

    def succeeded(self, key: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.delete(self._key(key))
