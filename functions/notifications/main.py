"""Notifications function: the user's inbox (read/unread) and notification preferences."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.notifications import UNSET
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.notification_schemas import (
    ListNotifications,
    NotificationList,
    NotificationOut,
    PreferencesOut,
    UnreadCountOut,
    UpdatePreferences,
)
from valorize.entrypoints.schemas import dump
from valorize.service.notifications import preferences_json


def render(notification: object) -> object:
    return dump(NotificationOut.of(notification))  # type: ignore[arg-type]


def list_notifications(call: Call) -> object:
    q = call.query
    page = bootstrap.services().notifications.list(call.user_id, q.unread, q.limit, q.cursor)
    return dump(
        NotificationList(
            data=[NotificationOut.of(n) for n in page.items], next_cursor=page.next_cursor
        )
    )


def unread_count(call: Call) -> object:
    return {"unread": bootstrap.services().notifications.unread_count(call.user_id)}


def mark_read(call: Call) -> object:
    return bootstrap.services().notifications.mark_read(
        call.user_id, call.params["notification_id"]
    )


def mark_all_read(call: Call) -> object:
    return {"unread": bootstrap.services().notifications.mark_all_read(call.user_id)}


def get_preferences(call: Call) -> object:
    return preferences_json(*bootstrap.services().notifications.preferences(call.user_id))


def update_preferences(call: Call) -> object:
    body: UpdatePreferences = call.body
    given = body.model_fields_set
    prefs, currency = bootstrap.services().notifications.update_preferences(
        call.user_id,
        email=body.email,
        threshold=(
            body.large_transaction_threshold if "large_transaction_threshold" in given else UNSET
        ),
    )
    return preferences_json(prefs, currency)


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
        ),
        Route(
            "GET",
            "/api/notifications/unread-count",
            unread_count,
            "How many notifications are unread",
            response=UnreadCountOut,
        ),
        Route(
            "POST",
            "/api/notifications/read-all",
            mark_all_read,
            "Mark every notification read; answers the new unread count",
            response=UnreadCountOut,
            render=lambda r: r,
            idempotency="claim",
        ),
        Route(
            "GET",
            "/api/notifications/preferences",
            get_preferences,
            "Which kinds are emailed, and the large-transaction threshold",
            response=PreferencesOut,
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
            render=render,
            errors=(404,),
            idempotency="claim",
        ),
    ],
)


@functions_framework.http
def notifications(request: flask.Request) -> flask.Response:
    return app(request)
