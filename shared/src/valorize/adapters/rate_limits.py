"""Per-user rate limits in Redis, with the `limits` library's sliding-window counter (two
counters per key and window, weighted: no burst of twice the limit at a window's edge, as a
fixed window allows, for two keys per user instead of a log of every request).

Fails open, like the login throttle: Redis is a cache here, and refusing every write of every
user during a Redis outage is worse than briefly not limiting them. Each outage is logged at
ERROR with the marker ``valorize_event: rate_limits_unavailable`` (a log-based metric counts
it), and the limiter is then bypassed for `breaker_seconds`, so an outage costs one Redis
timeout per instance and interval, not one per request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.strategies import SlidingWindowCounterRateLimiter
    from redis import Redis

log = logging.getLogger(__name__)
# The marker the log-based metric filters on.
RATE_LIMITS_UNAVAILABLE = "rate_limits_unavailable"


def parse_rate(text: str) -> RateLimitItem:
    """A rate in the `limits` notation ("300/minute", "30 per hour"); ValueError if not."""
    from limits import parse

    return parse(text)


class RedisRateLimiter:
    def __init__(
        self,
        client: Redis,
        rates: Mapping[str, str],
        *,
        breaker_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`rates`: kind -> rate ("writes": "300/minute"). `client`'s connection pool (and so
        its timeouts) is shared with the cache and the login throttle."""
        self.client = client
        self.rates = {kind: parse_rate(rate) for kind, rate in rates.items()}
        self.breaker_seconds = breaker_seconds
        self.clock = clock
        self._open_until = 0.0
        self._limiter: SlidingWindowCounterRateLimiter | None = None

    def _strategy(self) -> SlidingWindowCounterRateLimiter:
        # Imported on the first write, not at cold start (the library costs ~0.1 s to load).
        if self._limiter is None:
            from limits.storage import RedisStorage
            from limits.strategies import SlidingWindowCounterRateLimiter

            storage = RedisStorage(
                "redis://",
                connection_pool=self.client.connection_pool,
                key_prefix="rate",
                wrap_exceptions=True,
            )
            self._limiter = SlidingWindowCounterRateLimiter(storage)
        return self._limiter

    def hit(self, kind: str, user_id: str) -> int:
        rate = self.rates.get(kind)
        if rate is None or self.clock() < self._open_until:
            return 0
        from limits.errors import StorageError

        try:
            limiter = self._strategy()
            if limiter.hit(rate, kind, user_id):
                return 0
            reset = limiter.get_window_stats(rate, kind, user_id).reset_time
        except StorageError as error:
            self._open_until = self.clock() + self.breaker_seconds
            log.error(
                "rate limits unavailable (redis), not limiting for %.0f s: %s",
                self.breaker_seconds,
                error,
                extra={"entry": {"valorize_event": RATE_LIMITS_UNAVAILABLE, "kind": kind}},
            )
            return 0
        return max(1, math.ceil(reset - time.time()))
