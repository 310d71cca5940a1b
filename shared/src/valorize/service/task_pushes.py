"""Live events published while handling a Cloud Task are part of the task's effect: pushed
keyed, after the handler, and a push that fails fails the task (a retryable 503) so that
Cloud Tasks delivers it again, and that delivery pushes them.

Why: the request path publishes best effort (adapters/realtime.py `publish`: a short
no-retry Redis client behind a breaker), and what it skips is gone for good. A request's
user is there to refetch; a task's is not, and a task's retry does not redo its durable
effects (idempotent), so it would not publish them again either. The notify worker does this
itself for `notification.created` (service/notifications.py); every other task's events come
through the message bus and `LiveUpdates`, or straight from the import stages, and are sure
through here.

How (per delivery, `TaskPushes.delivery`, opened by the HTTP pipeline around every internal
route's handler, entrypoints/http.py):

1. While the handler runs, what it publishes is collected, not pushed (a context variable:
   one function's instance serves request routes and task routes at once, on threads).
   Progress ticks (`SUPERSEDED`) are pushed best effort at once, as on the request path.
2. After the handler (its effects committed, or it failed after committing some), each
   collected event is pushed with `LivePublisher.publish_once`, through the retrying Redis
   client, keyed (`push_key`) so that a redelivery, or a push whose answer was lost, never
   pushes an event twice.
3. When a push fails, the events not pushed are stored with the task's other idempotency
   state (`IdempotencyStore`, `users/{uid}/idempotency/task-pushes-<task digest>`, and
   `...-1`, `...-2` when they outgrow one document), and the task fails with Unavailable
   (503). Its redelivery runs its handler (which finds its work done and publishes nothing
   new), then pushes what was stored, then drops the records.

A task without a `user_id` in its body has no tenant to store under: its publishes stay best
effort (none of today's task routes that publish is such a task).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from valorize.domain.errors import Unavailable
from valorize.service.ports import Clock, IdempotencyRecord, IdempotencyStore, LivePublisher

log = logging.getLogger(__name__)

# Progress ticks: each is superseded by the next and by the terminal event (import.ready,
# import.committed, import.reverted, import.failed; account.deleted), which are sure. A tick
# lost is a progress bar that jumps; keying each would cost a Redis key and, on an outage, a
# stored push per tick of a 100k-row statement.
SUPERSEDED: Final = frozenset({"import.progress", "account.deleting"})
# Where a delivery's unpushed events wait for its redelivery (IdempotencyStore's key space:
# a user's Idempotency-Key hashes are hex digests, so this prefix never meets one).
PENDING_PREFIX: Final = "task-pushes-"
PENDING_FINGERPRINT: Final = "task-pushes"
# As long as the event log keeps a key (adapters/realtime.py DEFAULT_TTL_SECONDS): past it a
# push could no longer be told from a new one, and clients have refetched anyway.
PENDING_TTL: Final = timedelta(hours=24)
# What one stored record holds of them, in characters of JSON (ASCII: one byte each).
PART_CHARS: Final = 700_000
# The ERROR line when a task's unpushed events could not even be stored (Redis and Firestore
# both failing): counted by the "no silent loss" metric (infra/cdktf/config.py).
TASK_PUSHES_LOST: Final = "task_pushes_lost"

# Payloads are the API's JSON; `str` only so that an odd value can never fail a task here.
_SORTED = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def push_key(task: str, event: str, data: Mapping[str, object], repeat: int) -> str:
    """An event's identity within its task: the task (the same across its redeliveries), the
    event and its payload (which names the entity and, for a change, its version:
    `updated_at`, the balance after it), and how many identical ones this delivery published
    before it (so a balance that goes A, B, A in one task pushes all three). A redelivery
    pushing what an earlier one stored, or racing it, meets the same keys; two different
    changes differ in task or payload."""
    text = _SORTED.encode([task, event, data, repeat])
    return f"{event}:{hashlib.blake2b(text.encode(), digest_size=16).hexdigest()}"


@dataclass(frozen=True)
class Push:
    user_id: str
    event: str
    data: Mapping[str, object]
    key: str

    def encode(self) -> str:
        return json.dumps([self.user_id, self.event, self.data, self.key], default=str)

    @classmethod
    def decode_all(cls, text: str) -> list[Push]:
        return [cls(u, e, d, k) for u, e, d, k in json.loads(text)]


def _parts(pushes: Sequence[Push]) -> list[str]:
    """The pushes as JSON texts of at most PART_CHARS each (one text per stored record: a
    Firestore document holds at most 1 MiB, and a backlog an automation run catches up on
    can make thousands of events)."""
    parts: list[list[str]] = [[]]
    size = 0
    for push in pushes:
        text = push.encode()
        if parts[-1] and size + len(text) > PART_CHARS:
            parts.append([])
            size = 0
        parts[-1].append(text)
        size += len(text) + 1
    return ["[" + ",".join(part) + "]" for part in parts]


@dataclass
class _Delivery:
    task: str
    collected: list[Push] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)

    def add(self, user_id: str, event: str, data: Mapping[str, object]) -> None:
        digest = _SORTED.encode([user_id, event, data])
        repeat = self._seen.get(digest, 0)
        self._seen[digest] = repeat + 1
        self.collected.append(Push(user_id, event, data, push_key(self.task, event, data, repeat)))


_current: ContextVar[_Delivery | None] = ContextVar("valorize_task_pushes", default=None)


class TaskPushes:
    """The publisher the services publish live events through (`publish`): best effort on
    the request path, collected inside a task's delivery and pushed sure after it."""

    def __init__(self, publisher: LivePublisher, store: IdempotencyStore, clock: Clock) -> None:
        self.publisher = publisher
        self.store = store
        self.clock = clock

    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None:
        delivery = _current.get()
        if delivery is None or event in SUPERSEDED:
            return self.publisher.publish(user_id, event, data)
        delivery.add(user_id, event, data)
        return None

    def publish_once(
        self, user_id: str, event: str, data: Mapping[str, object], key: str
    ) -> int | None:
        return self.publisher.publish_once(user_id, event, data, key)

    @contextmanager
    def delivery(self, task: str, user_id: str, *, redelivered: bool) -> Iterator[None]:
        """Around a task handler: `task` names the task the same way on every delivery of it
        (entrypoints/http.py: its Cloud Tasks name, route and body); `user_id` is its tenant;
        `redelivered`: an earlier delivery may have stored pushes (False only when Cloud
        Tasks says this is the first attempt, sparing that read).

        Raises Unavailable after the handler returned when a push failed; when the handler
        raised, its error goes on as it was (its retry pushes what was stored)."""
        delivery = _Delivery(task)
        token = _current.set(delivery)
        try:
            yield
        except BaseException:
            _current.reset(token)
            try:
                self._flush(delivery, user_id, redelivered, handler_failed=True)
            except Exception:  # the handler's error is the one to answer with
                log.exception("the live events of a failed task delivery were not settled")
            raise
        _current.reset(token)
        self._flush(delivery, user_id, redelivered, handler_failed=False)

    def _flush(
        self, delivery: _Delivery, user_id: str, redelivered: bool, *, handler_failed: bool
    ) -> None:
        key_hash = (
            PENDING_PREFIX + hashlib.blake2b(delivery.task.encode(), digest_size=16).hexdigest()
        )
        stored: list[Push] = []
        parts = 0
        if redelivered:
            try:
                stored, parts = self._read(user_id, key_hash)
            except Exception:
                if not handler_failed:
                    raise
                log.exception("could not read the live events an earlier delivery kept")
        pushes = [*stored, *delivery.collected]
        for index, push in enumerate(pushes):
            try:
                self.publisher.publish_once(push.user_id, push.event, push.data, push.key)
            except Unavailable:
                log.warning(
                    "live updates unavailable: %d events of this task kept for its retry",
                    len(pushes) - index,
                )
                self._keep(user_id, key_hash, pushes[index:], parts, handler_failed)
                if handler_failed:
                    return  # the handler's own error fails the task
                raise
        self._drop(user_id, key_hash, parts)

    def _read(self, user_id: str, key_hash: str) -> tuple[list[Push], int]:
        """What an earlier delivery kept, and in how many records."""
        first = self.store.get_idempotency(user_id, key_hash)
        if first is None:
            return [], 0
        parts = int(first.body["parts"])
        pushes = Push.decode_all(first.body["pushes"])
        for index in range(1, parts):
            record = self.store.get_idempotency(user_id, f"{key_hash}-{index}")
            if record is not None:  # (expired with the first one, or never: read as it is)
                pushes += Push.decode_all(record.body["pushes"])
        return pushes, parts

    def _drop(self, user_id: str, key_hash: str, parts: int, keep: int = 0) -> None:
        # The first record last: as long as it is there, it names all the others.
        for index in reversed(range(keep, parts)):
            self.store.drop_idempotency(user_id, f"{key_hash}-{index}" if index else key_hash)

    def _keep(
        self, user_id: str, key_hash: str, rest: list[Push], parts: int, handler_failed: bool
    ) -> None:
        texts = _parts(rest)
        expires = self.clock.now() + PENDING_TTL

        def record(index: int, body: dict[str, object]) -> IdempotencyRecord:
            key = f"{key_hash}-{index}" if index else key_hash
            return IdempotencyRecord(key, PENDING_FINGERPRINT, 503, body, expires)

        try:
            # The first record last, so that it never names a record not written yet.
            for index in range(len(texts) - 1, 0, -1):
                self.store.put_idempotency(user_id, record(index, {"pushes": texts[index]}))
            first = {"parts": len(texts), "pushes": texts[0]}
            self.store.put_idempotency(user_id, record(0, first))
            self._drop(user_id, key_hash, parts, keep=len(texts))
        except Exception:
            log.exception(
                "%d live events of a task could not be pushed nor kept for its retry",
                len(rest),
                extra={
                    "entry": {
                        "valorize_event": TASK_PUSHES_LOST,
                        "user_id": user_id,
                        "events": sorted({p.event for p in rest}),
                        "lost": len(rest),
                    }
                },
            )
            if not handler_failed:
                raise Unavailable("live updates are unavailable; retry") from None
