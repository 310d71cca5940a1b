"""Requests and answers of the notify (internal) and notifications (user) functions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from valorize.domain import ids
from valorize.domain.notifications import (
    NotificationKind,
    NotificationPreferences,
    NotificationRequest,
)
from valorize.entrypoints.schemas import ListOf, Out
from valorize.service.requests import MINOR_UNITS_MAX, Id, Page, RequestModel

NotificationId = Annotated[str, StringConstraints(pattern=ids.NOTIFICATION.pattern)]


# --- notify (Cloud Tasks) ---------------------------------------------------------------------


class DeliverNotification(RequestModel):
    """A NotificationRequest, as the Notifier enqueues it (adapters/notifier.py)."""

    user_id: Id
    id: NotificationId = Field(description="Deterministic: the same cause gives the same id")
    kind: NotificationKind
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    body: Annotated[str, StringConstraints(max_length=2000)]
    data: dict[str, Any] = Field(default_factory=dict)

    def request(self) -> NotificationRequest:
        return NotificationRequest(
            user_id=self.user_id,
            id=self.id,
            kind=self.kind,
            title=self.title,
            body=self.body,
            data=dict(self.data),
        )


class DeliveryOut(Out):
    id: str
    stored: bool = Field(description="False: it was stored by an earlier delivery")
    pushed: bool = Field(description="notification.created went to the user's sockets")
    emailed: bool = Field(description="This delivery sent the email")
    dropped: str | None = Field(description="Why nothing was done (e.g. no such user)")


# --- notifications (users) --------------------------------------------------------------------


class NotificationOut(Out):
    id: str
    kind: NotificationKind
    title: str
    body: str
    data: dict[str, Any] = Field(description="Ids and values of what it is about")
    read: bool
    read_at: dt.datetime | None
    created_at: dt.datetime


NotificationList = ListOf[NotificationOut]


class ListNotifications(Page):
    unread: bool = Field(default=False, description="true: only unread ones")


class UnreadCountOut(Out):
    unread: int


class PreferencesOut(Out):
    email: dict[NotificationKind, bool] = Field(
        description="Per kind, whether it is emailed (kinds never set follow the defaults: "
        "on for import.failed, budget.overspent and account.low_balance)"
    )
    large_transaction_threshold: int | None = Field(
        description="Notify of transactions at least this large (minor units of `currency`); "
        "null: off"
    )
    currency: str = Field(description="The user's preferred currency")

    @classmethod
    def of(cls, given: tuple[NotificationPreferences, str]) -> PreferencesOut:
        preferences, currency = given
        return cls(
            email=preferences.email_choices(),
            large_transaction_threshold=preferences.large_transaction_threshold,
            currency=currency,
        )


class UpdatePreferences(RequestModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    email: dict[NotificationKind, StrictBool] | None = Field(
        default=None, description="Only the kinds to change"
    )
    large_transaction_threshold: Annotated[StrictInt, Field(gt=0, le=MINOR_UNITS_MAX)] | None = (
        Field(default=None, description="Minor units of the preferred currency; null turns it off")
    )
