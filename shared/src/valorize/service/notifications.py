"""Notifications: delivery (the notify task) and the user's inbox and preferences.

Delivery is idempotent per notification id, because Cloud Tasks delivers at least once:

1. store: create-if-absent under the notification's deterministic id, so a redelivered task
   stores nothing new;
2. push `notification.created` to the user's sockets, only when this delivery stored it
   (best effort: a delivery that died between storing and pushing does not push on retry;
   the inbox and the unread count still show it);
3. email, when the user's preferences want this kind: claim, send, record `emailed_at`.
   A redelivery after `emailed_at` sends nothing; one after a crash between sending and
   recording sends again. **Email is at-least-once** (a repeat carries the same Message-ID,
   so mail clients can fold it). While another delivery holds a fresh claim, this one
   answers 503 and Cloud Tasks retries it later.
"""

from __future__ import annotations

import hashlib
import html
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from valorize.domain.errors import NotFound, Unavailable, ValidationFailed
from valorize.domain.model import User
from valorize.domain.notifications import (
    UNSET,
    Notification,
    NotificationKind,
    NotificationPreferences,
    NotificationRequest,
    Unset,
)
from valorize.service.ports import (
    Clock,
    EmailClaim,
    LivePublisher,
    Mailer,
    NotificationStore,
    OutgoingEmail,
    PageResult,
)

log = logging.getLogger(__name__)

CREATED_EVENT = "notification.created"
# A claim older than this is a delivery that died while sending; another may take over.
EMAIL_LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Delivery:
    """What one delivery of a notify task did."""

    id: str
    stored: bool
    pushed: bool
    emailed: bool
    # Why nothing was done (e.g. the user no longer exists); None when delivered.
    dropped: str | None = None


def compose_email(user: User, n: Notification) -> OutgoingEmail:
    """Plain text and a simple HTML body; the subject is the title."""
    text = f"{n.body}\n\n-- \nValorizeAI · you can choose which notifications are emailed.\n"
    page = (
        '<!doctype html><html><body style="font-family: sans-serif">'
        f"<h2>{html.escape(n.title)}</h2><p>{html.escape(n.body)}</p>"
        '<p style="color: #777; font-size: 12px">ValorizeAI · you can choose which '
        "notifications are emailed.</p></body></html>"
    )
    # Ids are unique per user; the user part keeps two users' notifications apart without
    # putting the user id itself in a header.
    owner = hashlib.sha256(user.id.encode()).hexdigest()[:16]
    return OutgoingEmail(
        to=user.email,
        subject=n.title,
        text=text,
        html=page,
        message_key=f"{n.id}.{owner}",
    )


class NotificationService:
    def __init__(
        self,
        notification_store: NotificationStore,
        users: Callable[[str], User | None],
        clock: Clock,
        publisher: LivePublisher,
        mailer: Mailer | None,
        render: Callable[[Notification], Mapping[str, object]],
        on_preferences_changed: Callable[[str], None] | None = None,
    ) -> None:
        self.notification_store = notification_store
        self.users = users
        self.clock = clock
        self.publisher = publisher
        self.mailer = mailer
        self.render = render
        self.on_preferences_changed = on_preferences_changed

    # --- delivery (the notify task) -----------------------------------------------------------

    def deliver(self, request: NotificationRequest) -> Delivery:
        user = self.users(request.user_id)
        if user is None:
            # Nothing to retry: answer success so the task is not redelivered forever.
            log.info("notification %s dropped: no user %s", request.id, request.user_id)
            return Delivery(request.id, False, False, False, dropped="no such user")
        stored = self.notification_store.create_notification(
            request.user_id, Notification.stored(request, self.clock.now())
        )
        notification = self.notification_store.get_notification(request.user_id, request.id)
        if notification is None:  # cannot happen: notifications are never deleted
            raise Unavailable("the notification vanished while being delivered; retry")
        # Pushed by whichever delivery gets there first (keyed by the notification), so a
        # delivery whose push failed is retried until one succeeds; the email is tried either
        # way, and a failed push fails the task after it.
        pushed = False
        push_failed: Unavailable | None = None
        try:
            seq = self.publisher.publish_once(
                user.id, CREATED_EVENT, self.render(notification), key=notification.id
            )
            pushed = seq is not None
        except Unavailable as error:
            push_failed = error
        emailed = self._email(user, notification)
        if push_failed is not None:
            raise push_failed
        return Delivery(notification.id, stored, pushed, emailed)

    def _email(self, user: User, n: Notification) -> bool:
        if n.emailed_at is not None or not self.notification_store.get_preferences(user.id).emails(
            n.kind
        ):
            return False
        if self.mailer is None:
            log.warning("notification %s not emailed: no mail server is configured", n.id)
            return False
        claim = self.notification_store.claim_email(user.id, n.id, self.clock.now(), EMAIL_LEASE)
        if claim is EmailClaim.BUSY:
            raise Unavailable("another delivery is emailing this notification; retry later")
        if claim is not EmailClaim.CLAIMED:
            return False
        try:
            self.mailer.send(compose_email(user, n))
        except Exception as error:
            self.notification_store.finish_email(user.id, n.id, None)
            log.warning("emailing notification %s failed: %s", n.id, error)
            raise Unavailable("the mail server is unavailable; retry") from error
        # A crash here (sent, not recorded) means the retry sends again: at-least-once.
        self.notification_store.finish_email(user.id, n.id, self.clock.now())
        return True

    # --- the inbox ----------------------------------------------------------------------------

    def list(
        self, user_id: str, unread_only: bool, limit: int, cursor: str | None
    ) -> PageResult[Notification]:
        return self.notification_store.list_notifications(user_id, unread_only, limit, cursor)

    def unread_count(self, user_id: str) -> int:
        return self.notification_store.count_unread(user_id)

    def mark_read(self, user_id: str, notification_id: str) -> Notification:
        return self.notification_store.mark_read(user_id, notification_id, self.clock.now())

    def mark_all_read(self, user_id: str) -> int:
        """Mark everything read; the new unread count (notifications that arrived meanwhile
        stay unread)."""
        self.notification_store.mark_all_read(user_id, self.clock.now())
        return self.notification_store.count_unread(user_id)

    # --- preferences --------------------------------------------------------------------------

    def _currency(self, user_id: str) -> str:
        user = self.users(user_id)
        if user is None:
            raise NotFound("user not found")
        return user.preferred_currency

    def preferences(self, user_id: str) -> tuple[NotificationPreferences, str]:
        """The preferences and the currency the threshold is in."""
        return self.notification_store.get_preferences(user_id), self._currency(user_id)

    def update_preferences(
        self,
        user_id: str,
        email: Mapping[NotificationKind, bool] | None = None,
        threshold: int | Unset | None = UNSET,
    ) -> tuple[NotificationPreferences, str]:
        if isinstance(threshold, int) and threshold <= 0:
            raise ValidationFailed.on(
                "large_transaction_threshold", "must be greater than zero (or null for off)"
            )
        currency = self._currency(user_id)
        self.notification_store.update_preferences(
            user_id, email or {}, threshold, self.clock.now()
        )
        if self.on_preferences_changed is not None:
            self.on_preferences_changed(user_id)
        return self.notification_store.get_preferences(user_id), currency
