"""The NotificationStore port.

    users/{uid}/notifications/{id}      kind, title, body, data, created_at, read, read_at,
                                        emailed_at, email_claimed_at,
                                        sort_key = "<created_at>#<id>" (newest first, cursor)
    users/{uid}/settings/notifications  email: {kind: bool} (explicit choices only),
                                        large_transaction_threshold, updated_at

The id is the notification's deterministic id, so `create()` (which fails when the document
exists) makes a redelivered notify task store nothing new.

Unread count: a `count()` aggregation over `read == false`, not a counter field. It is exact
by construction (no counter to drift when a batch half-applies or a task is retried), reads
need no transaction to keep a counter in step, and there is no hot counter document; it costs
one document read per 1,000 unread notifications, the same single read as a counter document
for anyone with fewer than 1,000 unread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.query import Query

from valorize.adapters.firestore.base import FirestoreAdapter
from valorize.adapters.firestore.contention import (
    commit,
    unchanged,
)
from valorize.domain import ids
from valorize.domain.errors import NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.notifications import (
    Notification,
    NotificationKind,
    NotificationPreferences,
    Unset,
)
from valorize.service.ports.notifications import EmailClaim
from valorize.service.ports.pages import PageResult

# Writes per batch when marking everything read (Firestore allows 500).
READ_ALL_BATCH = 400


def sort_key(n: Notification) -> str:
    return f"{n.created_at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{n.id}"


def _doc(n: Notification) -> dict[str, Any]:
    return {
        "kind": n.kind.value,
        "title": n.title,
        "body": n.body,
        "data": dict(n.data),
        "created_at": n.created_at,
        "sort_key": sort_key(n),
        "read": n.read_at is not None,
        "read_at": n.read_at,
        "emailed_at": n.emailed_at,
        "email_claimed_at": None,
    }


def _notification(doc_id: str, d: Mapping[str, Any]) -> Notification:
    return Notification(
        id=doc_id,
        kind=NotificationKind(d["kind"]),
        title=d["title"],
        body=d["body"],
        data=dict(d.get("data") or {}),
        created_at=d["created_at"],
        read_at=d.get("read_at"),
        emailed_at=d.get("emailed_at"),
    )


def _preferences(d: Mapping[str, Any]) -> NotificationPreferences:
    known = {k.value for k in NotificationKind}
    email = {NotificationKind(k): bool(v) for k, v in (d.get("email") or {}).items() if k in known}
    return NotificationPreferences(email, d.get("large_transaction_threshold"))


class FirestoreNotificationStore(FirestoreAdapter):
    def _notifications(self, user_id: str) -> firestore.CollectionReference:
        return self._col(user_id, "notifications")

    def _prefs_ref(self, user_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "settings").document("notifications")
        return ref

    # --- notifications ------------------------------------------------------------------------

    def create_notification(self, user_id: str, notification: Notification) -> bool:
        try:
            self._notifications(user_id).document(notification.id).create(_doc(notification))
        except gexc.AlreadyExists:
            return False
        return True

    def get_notification(self, user_id: str, notification_id: str) -> Notification | None:
        snap = self._notifications(user_id).document(notification_id).get()
        return _notification(snap.id, snap.to_dict() or {}) if snap.exists else None

    def list_notifications(
        self, user_id: str, unread_only: bool, limit: int, cursor: str | None
    ) -> PageResult[Notification]:
        q: Query = self._notifications(user_id).order_by(
            "sort_key", direction=firestore.Query.DESCENDING
        )
        if unread_only:
            q = q.where(filter=FieldFilter("read", "==", False))
        if cursor:
            after = decode_cursor(cursor, ids.NOTIFICATION_CURSOR)
            q = q.where(filter=FieldFilter("sort_key", "<", after))
        snaps = list(q.limit(limit + 1).stream())
        items = [_notification(s.id, s.to_dict() or {}) for s in snaps[:limit]]
        nxt = encode_cursor(sort_key(items[-1])) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def count_unread(self, user_id: str) -> int:
        q = self._notifications(user_id).where(filter=FieldFilter("read", "==", False))
        # [[AggregationResult]]: one result set with one aggregation (the client's typing of
        # count() is off, hence Any).
        result: Any = q.count().get()  # type: ignore[call-arg]
        return int(result[0][0].value) if result else 0

    def mark_read(self, user_id: str, notification_id: str, when: datetime) -> Notification:
        ref = self._notifications(user_id).document(notification_id)

        def attempt() -> Notification:
            snap = ref.get()
            if not snap.exists:
                raise NotFound("notification not found")
            n = _notification(snap.id, snap.to_dict() or {})
            if n.read_at is not None:
                return n  # read already: keeps when it was first read
            batch = self.db.batch()
            batch.update(ref, {"read": True, "read_at": when}, option=unchanged(snap))
            commit(batch)
            return replace(n, read_at=when)

        return self._optimistic(attempt)

    def mark_all_read(self, user_id: str, when: datetime) -> int:
        unread = self._notifications(user_id).where(filter=FieldFilter("read", "==", False))

        def page() -> int:
            snaps = list(unread.limit(READ_ALL_BATCH).stream())
            batch = self.db.batch()
            for s in snaps:
                # Only if still unread as seen: a concurrent read keeps its read_at.
                batch.update(s.reference, {"read": True, "read_at": when}, option=unchanged(s))
            if snaps:
                commit(batch)
            return len(snaps)

        changed = 0
        while done := self._optimistic(page):
            changed += done
        return changed

    def claim_email(
        self, user_id: str, notification_id: str, now: datetime, lease: timedelta
    ) -> EmailClaim:
        ref = self._notifications(user_id).document(notification_id)

        def attempt() -> EmailClaim:
            snap = ref.get()
            if not snap.exists:
                return EmailClaim.MISSING
            d = snap.to_dict() or {}
            if d.get("emailed_at") is not None:
                return EmailClaim.DONE
            claimed = d.get("email_claimed_at")
            if claimed is not None and now - claimed < lease:
                return EmailClaim.BUSY
            batch = self.db.batch()
            batch.update(ref, {"email_claimed_at": now}, option=unchanged(snap))
            commit(batch)
            return EmailClaim.CLAIMED

        return self._optimistic(attempt)

    def finish_email(self, user_id: str, notification_id: str, sent_at: datetime | None) -> None:
        fields: dict[str, Any] = {"email_claimed_at": None}
        if sent_at is not None:
            fields["emailed_at"] = sent_at
        self._notifications(user_id).document(notification_id).update(fields)

    # --- preferences --------------------------------------------------------------------------

    def get_preferences(self, user_id: str) -> NotificationPreferences:
        snap = self._prefs_ref(user_id).get()
        return _preferences(snap.to_dict() or {}) if snap.exists else NotificationPreferences()

    def update_preferences(
        self,
        user_id: str,
        email: Mapping[NotificationKind, bool],
        threshold: int | Unset | None,
        when: datetime,
    ) -> None:
        fields: dict[str, Any] = {"updated_at": when}
        if email:
            fields["email"] = {kind.value: on for kind, on in email.items()}
        if not isinstance(threshold, Unset):
            fields["large_transaction_threshold"] = threshold
        # Merged: the email map's other kinds stay as they are.
        self._prefs_ref(user_id).set(fields, merge=True)
