"""The Socket.IO server: authenticated connections, one room per user, catch-up after gaps.

Functions never talk to this process: they publish through Redis (valorize.adapters.realtime)
on python-socketio's Redis-manager channel, and every instance's ``RedisManager`` delivers
to the sockets it holds. So any number of instances serve together, and an event reaches a
client whichever instance it is connected to.

Protocol (README.md has the client side):

- connect with auth ``{"token": "vz_...", "since": <last seq seen, optional>}``; a missing,
  invalid, expired or revoked token refuses the connection. The socket joins only the room
  ``user:<its user id>``; there is no handler that joins any other room.
- right after connecting, the events the client missed since ``since`` (in order), then
  ``sync.done {"latest_seq", "replayed"}``; or ``sync.reset {"reason", "latest_seq"}`` when
  they are no longer all in the log (the client refetches its state).
- every event is ``{"seq", "ts", "data"}``; ``seq`` grows by one per event of that user.
- ``sync {"since": n}`` at any time (a client that saw a seq jump) does the same catch-up
  and also answers it as an acknowledgement; at most ``VALORIZE_SYNC_RATE`` per socket
  (Settings.sync_rate, default 10 a minute), beyond which the answer is
  ``{"error": "rate_limited", "retry_after": <seconds>}`` and nothing is replayed.

The worker is gunicorn's eventlet (default) or gevent, chosen by ``VALORIZE_REALTIME_WORKER``
(gunicorn.conf.py reads the same variable); this module adapts the little that differs.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import socketio

from valorize import bootstrap
from valorize.adapters.realtime import CHANNEL, CatchUp, EventLog, user_room
from valorize.adapters.revocations import RedisRevocationFeed
from valorize.config import Settings
from valorize.domain.errors import Unauthorized
from valorize.entrypoints.request_log import configure_logging
from valorize.service.auth import Principal
from valorize.service.ports import RevocationFeed

log = logging.getLogger("valorize.realtime")

WORKERS = ("eventlet", "gevent")
# Socket.IO's defaults, stated because they matter on Cloud Run: a ping every 25 s keeps the
# WebSocket busy well inside every idle timeout between the browser and the instance (the
# Google front end's included), and a client silent for 25 + 20 s is dropped, freeing its slot.
PING_INTERVAL = 25
PING_TIMEOUT = 20
# Token checks in flight at once (each is a Firestore read): a reconnect storm queues here
# instead of flooding Firestore, and under eventlet it matches the REST session's pool of 10
# connections (more would open and discard a connection per check).
AUTH_CONCURRENCY = 10


def worker_kind(s: Settings) -> str:
    kind = s.realtime_worker
    if kind not in WORKERS:
        raise RuntimeError(f"VALORIZE_REALTIME_WORKER={kind!r}; expected one of {WORKERS}")
    return kind


@dataclass
class _Hold:
    holders: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)
    # sid -> the seq it has caught up to: held events up to there are not sent to it again.
    caught_up: dict[str, int] = field(default_factory=dict)


class CatchUpRedisManager(socketio.RedisManager):
    """A RedisManager that can hold a room's incoming events while a client catches up.

    Without it a live event could overtake the replayed ones it follows (both are sent to the
    socket, from different greenlets), and a client that applies events in seq order would
    then drop the older ones. Holding costs the room's other sockets the delay of one Redis
    read. Single OS thread, cooperative scheduling: no locks needed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: dict[str, _Hold] = {}

    def hold(self, room: str) -> None:
        self._held.setdefault(room, _Hold()).holders += 1

    def release(self, room: str, sid: str, caught_up_to: int) -> None:
        hold = self._held[room]
        hold.holders -= 1
        hold.caught_up[sid] = caught_up_to
        if hold.holders:
            return
        del self._held[room]
        for message in hold.messages:
            seq = _seq_of(message)
            skip = [s for s, upto in hold.caught_up.items() if seq is not None and seq <= upto]
            if message.get("skip_sid"):
                skip += _as_list(message["skip_sid"])
            super()._handle_emit({**message, "skip_sid": skip or None})

    def _handle_emit(self, message: dict[str, Any]) -> None:
        # python-socketio calls this for every event another host (a function) published.
        hold = self._held.get(message.get("room") or "")
        if hold is not None:
            hold.messages.append(message)
            return
        super()._handle_emit(message)


def _seq_of(message: dict[str, Any]) -> int | None:
    data = message.get("data")
    envelope = data[0] if isinstance(data, list) and data else None
    seq = envelope.get("seq") if isinstance(envelope, dict) else None
    return seq if isinstance(seq, int) else None


def _as_list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _since(value: object) -> tuple[int | None, bool]:
    """(since, valid): a non-negative integer or absent."""
    if value is None:
        return None, True
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value, True
    return None, False


def _firestore_over_rest(services: bootstrap.Services) -> None:
    """Under eventlet, talk to Firestore over its REST API instead of gRPC.

    gRPC's Python layer waits on ``threading`` primitives, which eventlet's monkey patching
    (done by gunicorn's eventlet worker before our code loads) turns green; the streaming
    calls behind ``DocumentReference.get`` then never return, not even from eventlet's
    native thread pool. The REST transport uses ``requests`` on patched sockets and
    cooperates. (Under gevent, gRPC has official support: ``init_gevent``.)
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.firestore_v1.services.firestore import FirestoreClient
    from google.cloud.firestore_v1.services.firestore.transports.rest import (
        FirestoreRestTransport,
    )

    client = services.firestore
    emulator = services.settings.firestore_emulator_host
    transport = (
        FirestoreRestTransport(host=emulator, url_scheme="http", credentials=AnonymousCredentials())
        if emulator
        else FirestoreRestTransport(credentials=client._credentials)
    )
    # The client builds its GAPIC layer lazily into this attribute; we build it first.
    client._firestore_api_internal = FirestoreClient(transport=transport)


def _prepare_worker(kind: str, services: bootstrap.Services) -> None:
    if kind == "gevent":
        import grpc.experimental.gevent as grpc_gevent

        grpc_gevent.init_gevent()
    else:
        _firestore_over_rest(services)


class RealtimeServer:
    def __init__(
        self,
        authenticate: Callable[[str], Principal],
        event_log: EventLog,
        manager: CatchUpRedisManager,
        async_mode: str,
        cors_origins: Iterable[str] = (),
        sync_rate: str = "10/minute",
    ) -> None:
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.authenticate = authenticate
        # Per socket, so in this process: a socket lives on one instance. Each sync reads up
        # to the whole event log from Redis and holds the user's room while it replays.
        self.sync_rate = parse(sync_rate)
        self.sync_limiter = MovingWindowRateLimiter(MemoryStorage())
        # Green under both workers: gunicorn monkey-patches threading before loading us.
        self._auth_slots = threading.BoundedSemaphore(AUTH_CONCURRENCY)
        self.event_log = event_log
        self.manager = manager
        self.cors_origins = frozenset(cors_origins)
        self.sio = socketio.Server(
            async_mode=async_mode,
            client_manager=manager,
            cors_allowed_origins=self.origin_allowed,
            ping_interval=PING_INTERVAL,
            ping_timeout=PING_TIMEOUT,
            logger=False,
            engineio_logger=False,
        )
        # token id -> its open sockets, so that a revocation closes them (watch_revocations).
        self._sockets: dict[str, set[str]] = {}
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("sync", self.on_sync)
        # Deliberately no join/leave handler: rooms are never the client's choice.

    def origin_allowed(self, origin: str, environ: dict[str, Any]) -> bool:
        """The configured origins, and our own: browsers send an Origin on every WebSocket,
        same-origin pages included, and a list alone would refuse those."""
        if origin in self.cors_origins:
            return True
        forwarded = environ.get("HTTP_X_FORWARDED_HOST", "").split(",")[0].strip()
        return urlsplit(origin).netloc in {environ.get("HTTP_HOST"), forwarded} - {""}

    # -- handlers ----------------------------------------------------------------------------
    def on_connect(self, sid: str, environ: dict[str, Any], auth: object) -> bool:
        fields = auth if isinstance(auth, dict) else {}
        token = fields.get("token")
        if not isinstance(token, str) or not token:
            raise socketio.exceptions.ConnectionRefusedError("missing token")
        try:
            with self._auth_slots:
                principal = self.authenticate(token)
        except Unauthorized as error:
            raise socketio.exceptions.ConnectionRefusedError(str(error)) from None
        except Exception:
            # Firestore unreachable: refuse now, the client retries with backoff.
            log.exception("token check failed")
            raise socketio.exceptions.ConnectionRefusedError("unavailable") from None
        room = user_room(principal.user_id)
        self.sio.save_session(sid, {"user_id": principal.user_id, "token_id": principal.token_id})
        self._sockets.setdefault(principal.token_id, set()).add(sid)
        # Hold the room before joining it: nothing live may reach this socket before its
        # catch-up, which runs once the connection is acknowledged.
        self.manager.hold(room)
        self.sio.enter_room(sid, room)
        self.sio.start_background_task(self._catch_up, sid, principal.user_id, fields.get("since"))
        log.info("connected", extra={"entry": {"user_id": principal.user_id, "sid": sid}})
        return True

    def on_disconnect(self, sid: str, *_reason: object) -> None:
        for token_id, sids in list(self._sockets.items()):
            sids.discard(sid)
            if not sids:
                self._sockets.pop(token_id, None)

    # -- revocations -------------------------------------------------------------------------
    def watch_revocations(
        self, feed: RevocationFeed, token_exists: Callable[[str], bool], every: float = 0.2
    ) -> None:
        """Close the sockets of a revoked token as soon as its revocation is announced (a
        background task for the life of the process). When the feed was down, announcements
        may have been missed: every open socket's token is checked again."""
        while True:
            try:
                live = feed.sync(self._close_token, lambda: self._recheck(token_exists))
            except Exception:
                log.exception("revocation watch failed")
                live = False
            self.sio.sleep(every if live else 1.0)

    def _close_token(self, token_id: str) -> None:
        for sid in self._sockets.pop(token_id, set()):
            log.info("closing a revoked token's socket", extra={"entry": {"sid": sid}})
            self.sio.disconnect(sid)

    def _recheck(self, token_exists: Callable[[str], bool]) -> None:
        for token_id in list(self._sockets):
            try:
                exists = token_exists(token_id)
            except Exception:
                log.exception("token recheck failed")
                continue
            if not exists:
                self._close_token(token_id)

    def on_sync(self, sid: str, data: object = None) -> dict[str, Any]:
        session = self.sio.get_session(sid)
        if not self.sync_limiter.hit(self.sync_rate, sid):
            reset = self.sync_limiter.get_window_stats(self.sync_rate, sid).reset_time
            retry_after = max(1, math.ceil(reset - time.time()))
            log.warning(
                "sync rate limited",
                extra={"entry": {"user_id": session["user_id"], "sid": sid}},
            )
            return {"error": "rate_limited", "retry_after": retry_after}
        since = data.get("since") if isinstance(data, dict) else None
        self.manager.hold(user_room(session["user_id"]))
        return self._catch_up(sid, session["user_id"], since)

    # -- catch-up ----------------------------------------------------------------------------
    def _catch_up(self, sid: str, user_id: str, raw_since: object) -> dict[str, Any]:
        """Replay, then answer; the caller has put a hold on the user's room."""
        room = user_room(user_id)
        caught_up_to = -1
        try:
            since, valid = _since(raw_since)
            try:
                result = (
                    self.event_log.since(user_id, since)
                    if valid
                    else CatchUp(self.event_log.latest(user_id), reset="invalid_since")
                )
            except Exception as error:  # noqa: BLE001 - any Redis trouble means the same
                log.warning("event log unavailable: %s: %s", type(error).__name__, error)
                result = CatchUp(-1, reset="log_unavailable")
            for logged in result.events:
                # ignore_queue: the socket is here, no need to go round through Redis.
                self.sio.emit(logged.event, logged.envelope, to=sid, ignore_queue=True)
            caught_up_to = result.latest_seq
            if result.reset:
                answer = {"reason": result.reset, "latest_seq": result.latest_seq}
                self.sio.emit("sync.reset", answer, to=sid, ignore_queue=True)
                return {"reset": True, **answer}
            answer = {"latest_seq": result.latest_seq, "replayed": len(result.events)}
            self.sio.emit("sync.done", answer, to=sid, ignore_queue=True)
            return {"reset": False, **answer}
        finally:
            self.manager.release(room, sid, caught_up_to)

    # -- WSGI --------------------------------------------------------------------------------
    def wsgi(self) -> socketio.WSGIApp:
        return socketio.WSGIApp(self.sio, _other_paths)


def _other_paths(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ.get("PATH_INFO") == "/healthz":
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"status": "ok"}']
    start_response("404 Not Found", [("Content-Type", "application/problem+json")])
    return [b'{"type": "about:blank", "title": "Not Found", "status": 404}']


def create_app() -> socketio.WSGIApp:
    configure_logging()
    services = bootstrap.build()
    s = services.settings
    kind = worker_kind(s)
    _prepare_worker(kind, services)
    reader = services.redis_log_reader
    manager = CatchUpRedisManager(s.redis_url, channel=CHANNEL)
    server = RealtimeServer(
        services.auth.authenticate,
        EventLog(reader, s.realtime_log_events, s.realtime_log_seconds),
        manager,
        async_mode=kind,
        cors_origins=s.cors_origins,
        sync_rate=s.sync_rate,
    )
    server.sio.start_background_task(
        server.watch_revocations,
        RedisRevocationFeed(services.redis_best_effort),
        lambda token_id: services.user_store.get_token(token_id) is not None,
    )
    log.info("realtime server ready", extra={"entry": {"worker": kind}})
    return server.wsgi()
