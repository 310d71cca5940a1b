"""The notification ports in memory: the store (adapters/firestore/notifications.py), a
mailer, a realtime publisher, and alert profiles built straight from the stores (no cache)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from valorize.domain import ids
from valorize.domain.alerts import AlertProfile
from valorize.domain.errors import NotFound, Unavailable
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.notifications import (
    Notification,
    NotificationKind,
    NotificationPreferences,
    Unset,
)
from valorize.service.ports import EmailClaim, OutgoingEmail, PageResult


def _key(n: Notification) -> str:
    """What the adapter orders and pages by (its `sort_key`, ids.NOTIFICATION_CURSOR)."""
    return f"{n.created_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{n.id}"


@dataclass
class _Stored:
    notification: Notification
    claimed_at: datetime | None = None


class InMemoryNotificationStore:
    def __init__(self) -> None:
        self.notifications: dict[str, dict[str, _Stored]] = {}
        self.preferences: dict[str, NotificationPreferences] = {}
        self.writes = 0

    def stored(self, user_id: str) -> dict[str, _Stored]:
        return self.notifications.setdefault(user_id, {})

    def create_notification(self, user_id: str, notification: Notification) -> bool:
        mine = self.stored(user_id)
        if notification.id in mine:
            return False
        mine[notification.id] = _Stored(notification)
        self.writes += 1
        return True

    def get_notification(self, user_id: str, notification_id: str) -> Notification | None:
        stored = self.stored(user_id).get(notification_id)
        return stored.notification if stored else None

    def list_notifications(
        self, user_id: str, unread_only: bool, limit: int, cursor: str | None
    ) -> PageResult[Notification]:
        rows = sorted((s.notification for s in self.stored(user_id).values()), key=_key)
        rows.reverse()
        if unread_only:
            rows = [n for n in rows if not n.read]
        if cursor:
            after = decode_cursor(cursor, ids.NOTIFICATION_CURSOR)
            rows = [n for n in rows if _key(n) < after]
        page = rows[: limit + 1]
        items = page[:limit]
        return PageResult(items, encode_cursor(_key(items[-1])) if len(page) > limit else None)

    def count_unread(self, user_id: str) -> int:
        return sum(1 for s in self.stored(user_id).values() if not s.notification.read)

    def mark_read(self, user_id: str, notification_id: str, when: datetime) -> Notification:
        stored = self.stored(user_id).get(notification_id)
        if stored is None:
            raise NotFound("notification not found")
        if stored.notification.read_at is None:
            stored.notification = replace(stored.notification, read_at=when)
            self.writes += 1
        return stored.notification

    def mark_all_read(self, user_id: str, when: datetime) -> int:
        changed = 0
        for stored in self.stored(user_id).values():
            if stored.notification.read_at is None:
                stored.notification = replace(stored.notification, read_at=when)
                changed += 1
        self.writes += 1 if changed else 0
        return changed

    def claim_email(
        self, user_id: str, notification_id: str, now: datetime, lease: timedelta
    ) -> EmailClaim:
        stored = self.stored(user_id).get(notification_id)
        if stored is None:
            return EmailClaim.MISSING
        if stored.notification.emailed_at is not None:
            return EmailClaim.DONE
        if stored.claimed_at is not None and now - stored.claimed_at < lease:
            return EmailClaim.BUSY
        stored.claimed_at = now
        return EmailClaim.CLAIMED

    def finish_email(self, user_id: str, notification_id: str, sent_at: datetime | None) -> None:
        stored = self.stored(user_id).get(notification_id)
        if stored is None:
            raise NotFound("notification not found")
        stored.claimed_at = None
        if sent_at is not None:
            stored.notification = replace(stored.notification, emailed_at=sent_at)

    def get_preferences(self, user_id: str) -> NotificationPreferences:
        return self.preferences.get(user_id, NotificationPreferences())

    def update_preferences(
        self,
        user_id: str,
        email: Mapping[NotificationKind, bool],
        threshold: int | Unset | None,
        when: datetime,
    ) -> None:
        self.preferences[user_id] = self.get_preferences(user_id).changed(email, threshold)
        self.writes += 1


@dataclass
class FakeMailer:
    sent: list[OutgoingEmail] = field(default_factory=list)
    # Raised by the next send (then cleared), to simulate a mail server outage.
    fail_with: Exception | None = None

    def send(self, email: OutgoingEmail) -> None:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error
        self.sent.append(email)


@dataclass
class FakePublisher:
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    up: bool = True
    keys: set[tuple[str, str]] = field(default_factory=set)

    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None:
        if not self.up:
            return None
        self.events.append((user_id, event, dict(data)))
        return len(self.events)

    def publish_once(
        self, user_id: str, event: str, data: Mapping[str, object], key: str
    ) -> int | None:
        if not self.up:
            raise Unavailable("live updates are unavailable; retry")
        if (user_id, key) in self.keys:
            return None
        self.keys.add((user_id, key))
        return self.publish(user_id, event, data)


class DirectProfiles:
    """AlertProfiles without a cache: built on every read, counting reads and rebuilds."""

    def __init__(self, build: Callable[[str], AlertProfile]) -> None:
        self.build = build
        self.gets = 0
        self.forgotten: list[str] = []

    def get(self, user_id: str) -> AlertProfile:
        self.gets += 1
        return self.build(user_id)

    def forget(self, user_id: str) -> None:
        self.forgotten.append(user_id)
