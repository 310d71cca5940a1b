"""Realtime events through Redis, without holding a socket.

One Lua script per event, one round trip, atomic:

1. ``INCR`` the user's sequence number (``seq``);
2. ``XADD`` the event to the user's log, a stream capped at the last N events whose entry id
   *is* the seq, so a catch-up is one ``XRANGE``;
3. ``PUBLISH`` it on python-socketio's Redis-manager channel, in the message format its
   ``RedisManager`` listeners expect, addressed to the user's room.

With a key (``append_once``), the script first checks the user's record of that key and does
nothing when it is there, and records it with the event: a task redelivered, or racing its
own duplicate, pushes its event once (the notify worker's `notification.created`).

Doing all three in one script is why this does not call ``socketio.RedisManager.emit``: that
publishes in a second round trip, so two writers for one user could log seq 5 before 6 yet
publish 6 before 5. Here seq order = log order = delivery order. (A test checks the message
against the one ``RedisManager(write_only=True).emit`` would publish.) Importing this module
costs only ``redis``; python-socketio is never imported by the functions.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis

from valorize.domain.errors import Unavailable

log = logging.getLogger(__name__)

# python-socketio's RedisManager default channel and namespace; the realtime server listens
# on the same ones.
CHANNEL = "socketio"
NAMESPACE = "/"
DEFAULT_MAX_EVENTS = 500
DEFAULT_TTL_SECONDS = 24 * 3600
# Markers of the ERROR lines a log-based metric counts.
REALTIME_UNAVAILABLE = "realtime_unavailable"
REALTIME_DROPPED = "realtime_events_dropped"
# Marks where the envelope goes inside the pre-encoded manager message (JSON escapes NUL, so
# the marker cannot occur in any real string of the message).
_SLOT = "\x00envelope\x00"


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def _keys(user_id: str) -> list[str]:
    # The hash tag keeps the keys in one cluster slot, as a script touching them requires.
    return [f"rt:{{{user_id}}}:seq", f"rt:{{{user_id}}}:log"]


def _once_key(user_id: str, key: str) -> str:
    return f"rt:{{{user_id}}}:once:{key}"


# KEYS: seq, log[, once]. ARGV: envelope tail, ttl, max events, event name, channel, message
# head, message tail. With a once key: nil (nothing done) when it is set, else it is set with
# the log's TTL in the same script.
# A missing counter starts at (unix seconds x 1000), not 0: if Redis loses the counter
# (restart without persistence, eviction, 24 h idle), the new numbers are still greater than
# every number a client saw before, so clients notice a gap and ask to catch up (and get a
# reset) instead of discarding new events as already seen.
_APPEND = """
if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then
  return nil
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], tonumber(redis.call('TIME')[1]) * 1000)
end
local seq = redis.call('INCR', KEYS[1])
local envelope = '{"seq":' .. seq .. ',' .. ARGV[1]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], seq .. '-0', 'event', ARGV[4], 'envelope', envelope)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. envelope .. ARGV[7])
if KEYS[3] then
  redis.call('SET', KEYS[3], seq, 'EX', ARGV[2])
end
return seq
"""


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LoggedEvent:
    event: str
    # Exactly what live clients received: {"seq": ..., "ts": ..., "data": ...}.
    envelope: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.envelope["seq"])


@dataclass(frozen=True)
class CatchUp:
    """What a client that last saw ``since`` missed: the events in order, or a reset."""

    latest_seq: int
    events: tuple[LoggedEvent, ...] = ()
    # Set when the missed events cannot be replayed; the client must refetch its state.
    reset: str | None = None


class EventLog:
    """Per-user sequence numbers and a bounded per-user event log in Redis.

    Window: the last ``max_events`` events of each user, kept until ``ttl_seconds`` after
    that user's latest event.
    """

    def __init__(
        self,
        client: redis.Redis,
        max_events: int = DEFAULT_MAX_EVENTS,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        channel: str = CHANNEL,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if max_events < 1 or ttl_seconds < 1:
            raise ValueError("the event log window must hold at least one event and second")
        self.client = client
        self.max_events = max_events
        self.ttl_seconds = ttl_seconds
        self.channel = channel
        self.now = now
        # Any id but a realtime server's: servers skip messages carrying their own host id.
        self.host_id = uuid.uuid4().hex
        self._append = client.register_script(_APPEND)

    def _message_parts(self, user_id: str, event: str) -> tuple[str, str]:
        """The manager message as ``head + envelope + tail`` (the script inserts the envelope,
        which only it can build because only it knows the seq)."""
        message = {
            "method": "emit",
            "event": event,
            "data": [_SLOT],
            "binary": False,
            "namespace": NAMESPACE,
            "room": user_room(user_id),
            "skip_sid": None,
            "callback": None,
            "host_id": self.host_id,
        }
        head, slot, tail = json.dumps(message).partition(json.dumps(_SLOT))
        assert slot, "the envelope slot must appear in the encoded message"
        return head, tail

    def append(self, user_id: str, event: str, data: object) -> int:
        """Log ``event`` for ``user_id``, deliver it to the user's room; returns its seq.

        Raises :class:`redis.RedisError` when Redis is unavailable.
        """
        seq = self._write(user_id, event, data, _keys(user_id))
        return int(cast(int, seq))

    def append_once(self, user_id: str, event: str, data: object, key: str) -> int | None:
        """As ``append``, unless an event was appended with ``key`` for this user within the
        log's TTL: then nothing, and None."""
        seq = self._write(user_id, event, data, [*_keys(user_id), _once_key(user_id, key)])
        return None if seq is None else int(cast(int, seq))

    def _write(self, user_id: str, event: str, data: object, keys: list[str]) -> object:
        # Everything after the seq, pre-encoded: '"ts":"...","data":{...}}'.
        envelope_tail = json.dumps({"ts": rfc3339(self.now()), "data": data})[1:]
        head, tail = self._message_parts(user_id, event)
        return self._append(
            keys=keys,
            args=[
                envelope_tail,
                self.ttl_seconds,
                self.max_events,
                event,
                self.channel,
                head,
                tail,
            ],
        )

    def latest(self, user_id: str) -> int:
        value = cast(bytes | None, self.client.get(_keys(user_id)[0]))
        return int(value) if value is not None else 0

    def since(self, user_id: str, seq: int | None) -> CatchUp:
        """The events after ``seq`` in order, or a reset when they are no longer all logged.

        ``seq=None`` (a client with no history) only reports the latest seq.
        """
        seq_key, log_key = _keys(user_id)
        if seq is None:
            return CatchUp(self.latest(user_id))
        # MULTI: the counter and the log read at one instant, so they agree.
        pipe = self.client.pipeline(transaction=True)
        pipe.get(seq_key)
        pipe.xrange(log_key, min=f"{seq + 1}-0", max="+")
        raw_latest, entries = cast(tuple[bytes | None, list[Any]], tuple(pipe.execute()))
        latest = int(raw_latest) if raw_latest is not None else 0
        if seq == latest:
            return CatchUp(latest)
        if seq > latest:
            # The counter restarted (Redis lost it): what the client saw is gone.
            return CatchUp(latest, reset="sequence_restarted")
        events = tuple(
            LoggedEvent(fields[b"event"].decode(), json.loads(fields[b"envelope"]))
            for _, fields in entries
        )
        if not events or events[0].seq != seq + 1:
            return CatchUp(latest, reset="window_exceeded")
        return CatchUp(latest, events)


class RealtimePublisher:
    """Publishing for request handlers (``publish``) and for task handlers (``publish_once``).

    ``publish`` is best effort: never raises, never waits long. After a Redis failure it skips
    publishing for ``cooldown`` seconds, so an outage costs each request at most nothing
    (rather than one connect timeout per event). What it skips is not in the log either, so
    no client can catch up on it: open clients see it on their next refetch. The failure and
    the count of what was skipped are logged at ERROR (markers REALTIME_UNAVAILABLE and
    REALTIME_DROPPED, for log-based metrics).

    ``publish_once`` is for a task whose push is part of its effect: keyed, so a redelivery
    pushes nothing twice; it raises Unavailable when Redis fails, so the task is retried,
    and it does not wait out the breaker (the queue's backoff paces the retries). It goes
    through ``sure_log``: a client with retries and the usual timeouts.
    """

    def __init__(
        self,
        event_log: EventLog,
        cooldown: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sure_log: EventLog | None = None,
    ) -> None:
        self.log = event_log
        self.sure_log = sure_log or event_log
        self.cooldown = cooldown
        self.clock = clock
        self._quiet_until = 0.0
        self._dropped = 0
        self._lock = threading.Lock()

    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None:
        if self.clock() < self._quiet_until:
            with self._lock:
                self._dropped += 1
            return None
        if self._dropped:
            self._report_dropped()
        try:
            return self.log.append(user_id, event, data)
        except redis.RedisError as error:
            self._quiet_until = self.clock() + self.cooldown
            log.error(
                "realtime publish failed (%s: %s); not publishing for %.0f s",
                type(error).__name__,
                error,
                self.cooldown,
                extra={"entry": {"valorize_event": REALTIME_UNAVAILABLE}},
            )
            with self._lock:
                self._dropped += 1
            return None

    def publish_once(
        self, user_id: str, event: str, data: Mapping[str, object], key: str
    ) -> int | None:
        try:
            return self.sure_log.append_once(user_id, event, data, key)
        except redis.RedisError as error:
            raise Unavailable(
                f"live updates are unavailable ({type(error).__name__}); retry"
            ) from error

    def _report_dropped(self) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.error(
                "%d realtime events were not published while Redis was unavailable",
                dropped,
                extra={"entry": {"valorize_event": REALTIME_DROPPED, "dropped": dropped}},
            )
