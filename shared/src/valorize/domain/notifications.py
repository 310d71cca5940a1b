"""Notifications: something a person should know (import finished or failed, a recurrence
created, an envelope overspent, a low balance, a large transaction, the month's summary).

A notification's id is deterministic, derived from what caused it (e.g.
`lowbal-<account>-<date>`), so the at-least-once delivery of Cloud Tasks stores it once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class NotificationKind(StrEnum):
    IMPORT_FINISHED = "import.finished"
    IMPORT_FAILED = "import.failed"
    RECURRENCE_CREATED = "recurrence.created"
    ENVELOPE_OVERSPENT = "budget.overspent"
    LOW_BALANCE = "account.low_balance"
    LARGE_TRANSACTION = "transaction.large"
    MONTH_SUMMARY = "month.summary"


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
