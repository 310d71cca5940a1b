"""Announcements to every instance over Redis pub/sub, read on the request path.

Each instance holds one subscription to every announcement channel and reads it on the
request path, before it trusts what it keeps in memory: what was published while the
instance sat idle is already in the socket's buffer then (the kernel receives while Cloud Run
throttles the CPU between requests), so reading it is a non-blocking local read, not a round
trip, and what was announced is applied by the very next request. A background listener would
not be enough on Cloud Run: it gets no CPU between requests and could lose the race with the
request it should protect.

When it arrives: Redis writes a PUBLISH's messages to the subscribers in the same pass of its
event loop as the publisher's reply, but just after it (its pending-write list is walked from
the head, where the client it answered last sits). So the announcement is on its way before
the writer's answer reaches the writer's client and that client's next request reaches any
instance: a network round trip later, against microseconds. Only a reader in the writer's
own process, reading the very instant the publish returns, can come before it; any later
round trip of the writer's to Redis comes after it, so every announcer makes one
(`delivered`) before it answers its own caller.

The subscription is the source of trust: when it cannot be made or breaks, every channel
reports itself down (its users then stop serving from memory), it tries again after
`retry_seconds`, and on resubscribing has its users forget everything they kept, since
announcements may have been published meanwhile.

Two channels use it: token revocations (adapters/revocations.py) and the query cache's
invalidations (adapters/cache.py `NearQueryCache`). An HTTP request reads the subscription
once (`RedisFeeds.per_request`): its token check reads what has arrived and the cache lookup
after it trusts that read, since everything announced before the request began was in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import select
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

import redis
from redis.client import PubSub

log = logging.getLogger(__name__)

Forget = Callable[[str], None]
Reset = Callable[[], None]


class RedisFeeds:
    """One subscription to several channels; `channel(name)` is one channel's Feed."""

    def __init__(
        self,
        client: redis.Redis,
        channels: Sequence[str],
        retry_seconds: float = 1.0,
        subscribe_timeout: float = 0.5,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.retry_seconds = retry_seconds
        self.subscribe_timeout = subscribe_timeout
        self.timer = timer
        self._channels = {name: ChannelFeed(self, name) for name in channels}
        self._by_wire = {name.encode(): feed for name, feed in self._channels.items()}
        self._pubsub: PubSub | None = None
        self._retry_at = 0.0
        # Locked reads started so far: a lock-free check sees whether one began meanwhile.
        self._reads = 0
        # One reader of the subscription at a time (gthread workers serve requests on threads).
        self._lock = threading.Lock()
        # Within a request (per_request): whether this thread has read the subscription yet,
        # and whether it was live then.
        self._request = threading.local()
        self._one_read = _OneRead(self._request)

    def channel(self, name: str) -> ChannelFeed:
        return self._channels[name]

    def per_request(self) -> _OneRead:
        """A scope (one request on this thread) in which the subscription is read once: by
        the first channel that syncs; the others trust that read."""
        return self._one_read

    def sync(self) -> bool:
        """Read what has arrived, each announcement to its channel's user; True while the
        subscription is live."""
        state = self._request
        if getattr(state, "inside", False):
            read: bool | None = state.read
            if read is None:
                read = state.read = self._read()
            return read
        return self._read()

    def _read(self) -> bool:
        if self._nothing_arrived():
            return True
        with self._lock:
            self._reads += 1
            if self._pubsub is None and not self._subscribe():
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
                        self._deliver(message["channel"], message["data"])
            except (redis.RedisError, OSError) as error:
                self._drop(error)
                self._reset_all()
                return False
            return True

    def _nothing_arrived(self) -> bool:
        """True when the subscription is live and nothing can be waiting to be applied,
        checked without the lock, which every request of every thread would otherwise queue
        on: no reader at work, none started meanwhile, and nothing on the socket. A reader
        drains redis-py's buffer before it lets go of the lock, so whatever arrived and was
        not applied yet is still on the socket."""
        pubsub, started = self._pubsub, self._reads
        if pubsub is None or self._lock.locked():
            return False
        sock = pubsub.connection._sock if pubsub.connection is not None else None
        # eventlet's monkey-patching takes poll away (realtime_server): it reads under the lock.
        if sock is None or not hasattr(select, "poll"):
            return False
        return not _readable(sock.fileno()) and self._reads == started and not self._lock.locked()

    def _deliver(self, channel: bytes | str, data: bytes | str) -> None:
        wire = channel if isinstance(channel, bytes) else channel.encode()
        feed = self._by_wire.get(wire)
        # A channel whose user has not synced yet keeps nothing that could be stale.
        if feed is not None and feed.forget is not None:
            feed.forget(data.decode() if isinstance(data, bytes) else str(data))

    def _reset_all(self) -> None:
        for feed in self._channels.values():
            if feed.reset is not None:
                feed.reset()

    def _subscribe(self) -> bool:
        if self.timer() < self._retry_at:
            return False
        pubsub = self.client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(*self._channels)
            # Subscribed only once Redis confirms every channel: announcements before that
            # are not seen.
            for _ in self._channels:
                confirmed = pubsub.get_message(timeout=self.subscribe_timeout)
                if confirmed is None or confirmed["type"] != "subscribe":
                    raise redis.ConnectionError("no subscription confirmation")
        except (redis.RedisError, OSError) as error:
            pubsub.close()
            self._retry_at = self.timer() + self.retry_seconds
            log.warning("feeds %s unavailable: %s", ", ".join(self._channels), error)
            return False
        self._pubsub = pubsub
        # Whatever was kept before may have been announced stale while nobody listened.
        self._reset_all()
        return True

    def _drop(self, error: Exception) -> None:
        log.warning("feeds %s lost: %s", ", ".join(self._channels), error)
        if self._pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
        self._pubsub = None
        self._retry_at = self.timer() + self.retry_seconds


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def _poll_keeping_the_gil() -> Callable[[int], bool] | None:
    """libc's poll(2) called through ctypes.PyDLL, which keeps the GIL. select.poll lets go
    of it around the call: under load every request's check then hands the GIL to another
    thread and queues to take it back, which costs more CPU than the zero-timeout poll
    itself. Holding it is safe because that poll never blocks."""
    try:
        poll = ctypes.PyDLL(None).poll
    except (OSError, AttributeError):
        return None
    poll.argtypes = [ctypes.POINTER(_PollFd), ctypes.c_ulong, ctypes.c_int]
    poll.restype = ctypes.c_int
    # Each thread polls its own pollfd (the kernel writes into it), made once.
    mine = threading.local()

    def readable(fd: int) -> bool:
        entry = getattr(mine, "entry", None)
        if entry is None:
            entry = mine.entry = _PollFd(fd, select.POLLIN, 0)
            mine.ref = ctypes.byref(entry)
        entry.fd = fd
        # Anything but "nothing" (data, hang-up, an error, -1) sends the reader to the lock.
        return bool(poll(mine.ref, 1, 0))

    return readable


def _poll_letting_go_of_the_gil(fd: int) -> bool:
    # A poll object of its own: one may not be polled by two threads at once.
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


# Whether a socket has something to read, without waiting.
_readable = _poll_keeping_the_gil() or _poll_letting_go_of_the_gil


class ChannelFeed:
    """One channel of a RedisFeeds subscription: the Feed its user syncs."""

    def __init__(self, feeds: RedisFeeds, name: str) -> None:
        self.feeds = feeds
        self.name = name
        self.forget: Forget | None = None
        self.reset: Reset | None = None

    def sync(self, forget: Forget, reset: Reset) -> bool:
        """Apply what has arrived: `forget` each announced item, or `reset` everything when
        announcements may have been missed. True while the feed is live."""
        # Its user is known from its first sync on; it keeps nothing before.
        self.forget, self.reset = forget, reset
        return self.feeds.sync()


def delivered(client: redis.Redis) -> None:
    """Return once Redis has written what this client's connection pool just published to
    the subscribers' sockets: a PING sent after the PUBLISH's reply is read in a later pass of
    Redis's event loop than the one that wrote the messages (see the module's docstring). One
    round trip per announcement, which makes "a write answered is seen by every instance's
    next request" hold without counting on the writer being slower than Redis."""
    client.ping()


def own_feed(
    client: redis.Redis, channel: str, retry_seconds: float = 1.0, subscribe_timeout: float = 0.5
) -> ChannelFeed:
    """A subscription of its own to one channel (e.g. realtime_server's revocation watch)."""
    feeds = RedisFeeds(client, [channel], retry_seconds, subscribe_timeout)
    return feeds.channel(channel)


class _OneRead:
    """per_request's scope, a plain class entered on every request; its state is the
    thread's own, so one serves every thread."""

    def __init__(self, state: threading.local) -> None:
        self._state = state

    def __enter__(self) -> None:
        self._state.read = None
        self._state.inside = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._state.inside = False
