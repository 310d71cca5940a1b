"""Notify function (internal: Cloud Tasks only): store a notification once, push it to the
user's sockets, email it when the user wants that kind (service/notifications.py). Safe to
redeliver."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.notification_schemas import DeliverNotification, DeliveryOut
from valorize.entrypoints.routes import Call, task


def deliver(call: Call) -> Any:
    return call.services.notifications.deliver(call.body.request())


app = FunctionApp(
    "notify",
    [
        task(
            "/api/notify/deliver",
            deliver,
            "Deliver a notification (Cloud Tasks target): store it if new, push "
            "notification.created when newly stored, email it if the user wants this kind; "
            "503 asks Cloud Tasks to retry",
            body=DeliverNotification,
            response=DeliveryOut,
            errors=(401, 503),
        ),
    ],
    bootstrap.build(),
    service="notifications",
)


@functions_framework.http
def notify(request: flask.Request) -> flask.Response:
    return app(request)
