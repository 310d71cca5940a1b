"""Announcements to every instance over Redis pub/sub, read on the request path.

Each instance holds one subscription per feed and reads it on the request path, before it
trusts what it keeps in memory: what was published while the instance sat idle is already in
the socket's buffer then (the kernel receives while Cloud Run throttles the CPU between
requests), so reading it is a non-blocking local read, not a round trip, and what was
announced is applied by the very next request. A background listener would not be enough on
Cloud Run: it gets no CPU between requests and could lose the race with the request it should
protect.

The subscription is the source of trust: when it cannot be made or breaks, the feed reports
itself down (its users then stop serving from memory), tries again after `retry_seconds`,
and on resubscribing has its users forget everything they kept, since announcements may have
been published meanwhile.

Two feeds use it: token revocations (adapters/revocations.py) and the query cache's
invalidations (adapters/cache.py `NearQueryCache`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis
from redis.client import PubSub

log = logging.getLogger(__name__)


class RedisFeed:
    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        retry_seconds: float = 1.0,
        subscribe_timeout: float = 0.5,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.channel = channel
        self.retry_seconds = retry_seconds
        self.subscribe_timeout = subscribe_timeout
        self.timer = timer
        self._pubsub: PubSub | None = None
        self._retry_at = 0.0
        # One reader of the subscription at a time (gthread workers serve requests on threads).
        self._lock = threading.Lock()

    def sync(self, forget: Callable[[str], None], reset: Callable[[], None]) -> bool:
        """Apply what has arrived: `forget` each announced item, or `reset` everything when
        announcements may have been missed. True while the feed is live."""
        with self._lock:
            if self._pubsub is None and not self._subscribe(reset):
                return False
            pubsub = self._pubsub
            assert pubsub is not None and pubsub.connection is not None
            try:
                # Until nothing is buffered: get_message also answers None for a reply it
                # swallows (redis-py's health-check PING of an idle subscription), and an
                # announcement may be right behind it.
                while pubsub.connection.can_read(timeout=0):
                    message = pubsub.get_message(timeout=0)
                    if message is not None and message["type"] == "message":
                        data = message["data"]
                        forget(data.decode() if isinstance(data, bytes) else str(data))
            except (redis.RedisError, OSError) as error:
                self._drop(error)
                reset()
                return False
            return True

    def _subscribe(self, reset: Callable[[], None]) -> bool:
        if self.timer() < self._retry_at:
            return False
        pubsub = self.client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self.channel)
            # Subscribed only once Redis confirms: announcements before that are not seen.
            confirmed = pubsub.get_message(timeout=self.subscribe_timeout)
            if confirmed is None or confirmed["type"] != "subscribe":
                raise redis.ConnectionError("no subscription confirmation")
        except (redis.RedisError, OSError) as error:
            pubsub.close()
            self._retry_at = self.timer() + self.retry_seconds
            log.warning("feed %s unavailable: %s", self.channel, error)
            return False
        self._pubsub = pubsub
        # Whatever was kept before may have been announced stale while nobody listened.
        reset()
        return True

    def _drop(self, error: Exception) -> None:
        log.warning("feed %s lost: %s", self.channel, error)
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
        self._pubsub = None
        self._retry_at = self.timer() + self.retry_seconds
