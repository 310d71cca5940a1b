"""Notifications: something a person should know (import finished or failed, a recurrence
created, an envelope overspent, a low balance, a large transaction, the month's summary).

A notification's id is deterministic, derived from what caused it (e.g.
`lowbal-<account>-<date>`), so the at-least-once delivery of Cloud Tasks stores it once."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Final


class NotificationKind(StrEnum):
    IMPORT_FINISHED = "import.finished"
    IMPORT_FAILED = "import.failed"
    RECURRENCE_CREATED = "recurrence.created"
    ENVELOPE_OVERSPENT = "budget.overspent"
    LOW_BALANCE = "account.low_balance"
    LARGE_TRANSACTION = "transaction.large"
    MONTH_SUMMARY = "month.summary"


class Unset(Enum):
    """Marks an argument the caller did not give (None is a value: "turn it off")."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET


def notification_id(*parts: str) -> str:
    """A Firestore- and Cloud-Tasks-safe id from the parts that identify the cause."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", "-".join(parts))[:200]


@dataclass(frozen=True)
class NotificationRequest:
    """What a producer asks the notify task to deliver."""

    user_id: str
    id: str
    kind: NotificationKind
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    id: str
    kind: NotificationKind
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None = None
    emailed_at: datetime | None = None

    @property
    def read(self) -> bool:
        return self.read_at is not None

    @classmethod
    def stored(cls, request: NotificationRequest, now: datetime) -> Notification:
        """The notification a request becomes when the notify task first stores it."""
        return cls(
            id=request.id,
            kind=request.kind,
            title=request.title,
            body=request.body,
            data=dict(request.data),
            created_at=now,
        )


# Emailed unless the user says otherwise: what needs acting on. The rest is in-app only
# unless the user asks for email.
EMAIL_BY_DEFAULT: frozenset[NotificationKind] = frozenset(
    {
        NotificationKind.IMPORT_FAILED,
        NotificationKind.ENVELOPE_OVERSPENT,
        NotificationKind.LOW_BALANCE,
    }
)


@dataclass(frozen=True)
class NotificationPreferences:
    """A user's choices. Only explicit email choices are kept, so a kind the user never
    touched follows the default (also for kinds added later)."""

    email: Mapping[NotificationKind, bool] = field(default_factory=dict)
    # Minor units of the user's preferred currency; None: no large-transaction alerts.
    large_transaction_threshold: int | None = None

    def emails(self, kind: NotificationKind) -> bool:
        return self.email.get(kind, kind in EMAIL_BY_DEFAULT)

    def email_choices(self) -> dict[NotificationKind, bool]:
        """Every kind with whether it is emailed (explicit choice or default)."""
        return {kind: self.emails(kind) for kind in NotificationKind}

    def changed(
        self,
        email: Mapping[NotificationKind, bool] | None = None,
        threshold: int | Unset | None = UNSET,
    ) -> NotificationPreferences:
        """These preferences with the given changes (absent = unchanged)."""
        return NotificationPreferences(
            email={**self.email, **(email or {})},
            large_transaction_threshold=(
                self.large_transaction_threshold if isinstance(threshold, Unset) else threshold
            ),
        )
