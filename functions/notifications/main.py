"""Notifications function: the user's inbox (read/unread) and notification preferences
(service/notifications.py). Its reads are cached in the notifications scope: every write to
the notification store (the notify worker's deliveries, marks, preferences) bumps it
(service/cache_scopes.py), and leaves the ledger's answers cached."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.notifications import UNSET
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.notification_schemas import (
    ListNotifications,
    NotificationList,
    NotificationOut,
    PreferencesOut,
    UnreadCountOut,
    UpdatePreferences,
)
from valorize.entrypoints.routes import Call, Idempotency, Route


def list_notifications(call: Call) -> Any:
    q = call.query
    return call.services.notifications.list(call.user_id, q.unread, q.limit, q.cursor)


def unread_count(call: Call) -> Any:
    return UnreadCountOut(unread=call.services.notifications.unread_count(call.user_id))


def mark_read(call: Call) -> Any:
    return call.services.notifications.mark_read(call.user_id, call.params["notification_id"])


def mark_all_read(call: Call) -> Any:
    return UnreadCountOut(unread=call.services.notifications.mark_all_read(call.user_id))


def get_preferences(call: Call) -> Any:
    return call.services.notifications.preferences(call.user_id)


def update_preferences(call: Call) -> Any:
    body: UpdatePreferences = call.body
    # An absent threshold is left as it is; a null one turns it off.
    given = "large_transaction_threshold" in body.model_fields_set
    threshold = body.large_transaction_threshold if given else UNSET
    return call.services.notifications.update_preferences(
        call.user_id, email=body.email, threshold=threshold
    )


app = FunctionApp(
    "notifications",
    [
        Route(
            "GET",
            "/api/notifications",
            list_notifications,
            "The caller's notifications, newest first (?unread=true: only unread ones)",
            query=ListNotifications,
            response=NotificationList,
            cached=True,
            cache_scope="notifications",
        ),
        Route(
            "GET",
            "/api/notifications/unread-count",
            unread_count,
            "How many notifications are unread",
            response=UnreadCountOut,
            cached=True,
            cache_scope="notifications",
        ),
        Route(
            "POST",
            "/api/notifications/read-all",
            mark_all_read,
            "Mark every notification read; answers the new unread count",
            response=UnreadCountOut,
            idempotency=Idempotency.CLAIM,
        ),
        Route(
            "GET",
            "/api/notifications/preferences",
            get_preferences,
            "Which kinds are emailed, and the large-transaction threshold",
            response=PreferencesOut,
            cached=True,
            cache_scope="notifications",
        ),
        Route(
            "PATCH",
            "/api/notifications/preferences",
            update_preferences,
            "Change which kinds are emailed (only the kinds given) and/or the large-transaction "
            "threshold (null: off)",
            body=UpdatePreferences,
            response=PreferencesOut,
        ),
        Route(
            "POST",
            "/api/notifications/<notification_id>/read",
            mark_read,
            "Mark one notification read (again: no change)",
            response=NotificationOut,
            errors=(404,),
            idempotency=Idempotency.CLAIM,
        ),
    ],
    bootstrap.build(),
)


@functions_framework.http
def notifications(request: flask.Request) -> flask.Response:
    return app(request)
