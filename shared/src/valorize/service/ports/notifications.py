"""Notifications: the inbox and preferences store, email, realtime pushes, alert profiles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from valorize.domain.alerts import AlertProfile
from valorize.domain.notifications import (
    Notification,
    NotificationKind,
    NotificationPreferences,
    Unset,
)
from valorize.service.ports.pages import PageResult


class EmailClaim(StrEnum):
    CLAIMED = "claimed"  # this delivery sends the email
    DONE = "done"  # already emailed
    BUSY = "busy"  # another delivery holds the claim right now
    MISSING = "missing"  # no such notification


class NotificationStore(Protocol):
    """users/{uid}/notifications and the user's notification preferences."""

    def create_notification(self, user_id: str, notification: Notification) -> bool:
        """Store it unless one with its id exists (create-if-absent); True when stored."""
        ...

    def get_notification(self, user_id: str, notification_id: str) -> Notification | None: ...
    def list_notifications(
        self, user_id: str, unread_only: bool, limit: int, cursor: str | None
    ) -> PageResult[Notification]:
        """Newest first (by when it was stored)."""
        ...

    def count_unread(self, user_id: str) -> int: ...
    def mark_read(self, user_id: str, notification_id: str, when: datetime) -> Notification:
        """Mark it read (once: a read one keeps its read_at); NotFound when absent."""
        ...

    def mark_all_read(self, user_id: str, when: datetime) -> int:
        """Mark every unread one read; returns how many changed."""
        ...

    def claim_email(
        self, user_id: str, notification_id: str, now: datetime, lease: timedelta
    ) -> EmailClaim:
        """Take the right to email it: not yet emailed, and nobody else's claim younger than
        `lease` (a claim whose holder died expires)."""
        ...

    def finish_email(self, user_id: str, notification_id: str, sent_at: datetime | None) -> None:
        """Record that it was emailed (`sent_at`), or drop the claim (None: sending failed)."""
        ...

    def get_preferences(self, user_id: str) -> NotificationPreferences: ...
    def update_preferences(
        self,
        user_id: str,
        email: Mapping[NotificationKind, bool],
        threshold: int | Unset | None,
        when: datetime,
    ) -> None:
        """Write only what changed (merged), so concurrent changes to different kinds both
        stay."""
        ...


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str
    # The local part of the Message-ID (the mailer adds its domain): derived from the
    # notification, so a repeated sending of the same notification carries the same id.
    message_key: str


class Mailer(Protocol):
    def send(self, email: OutgoingEmail) -> None:
        """Hand it to the mail server; raises when that fails."""
        ...


class LivePublisher(Protocol):
    def publish(self, user_id: str, event: str, data: Mapping[str, object]) -> int | None:
        """Best effort: never raises; None when not published."""
        ...

    def publish_once(
        self, user_id: str, event: str, data: Mapping[str, object], key: str
    ) -> int | None:
        """Publish unless an event with ``key`` was published for the user (within the event
        log's window): its seq, or None when it already was. Raises Unavailable when it
        cannot tell or publish (a task then retries)."""
        ...


class AlertProfiles(Protocol):
    """A cheap read of what a user wants alerts about (adapters/alert_profiles.py)."""

    def get(self, user_id: str) -> AlertProfile: ...
    def forget(self, user_id: str) -> None:
        """The profile's sources changed (accounts, envelopes, preferences): rebuild it."""
        ...
