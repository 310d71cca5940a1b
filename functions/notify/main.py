"""Notify function (internal: Cloud Tasks only): store a notification once, push it to the
user's sockets, email it when the user wants that kind. Safe to redeliver."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.notification_schemas import DeliverNotification, DeliveryOut
from valorize.entrypoints.schemas import dump


def deliver(call: Call) -> object:
    return bootstrap.services().notifications.deliver(call.body.request())


app = FunctionApp(
    "notify",
    [
        Route(
            "POST",
            "/api/notify/deliver",
            deliver,
            "Deliver a notification (Cloud Tasks target): store it if new, push "
            "notification.created when newly stored, email it if the user wants this kind; "
            "503 asks Cloud Tasks to retry",
            body=DeliverNotification,
            response=DeliveryOut,
            render=lambda d: dump(DeliveryOut.of(d)),
            auth=False,
            internal=True,
            errors=(401, 503),
        ),
    ],
)


@functions_framework.http
def notify(request: flask.Request) -> flask.Response:
    return app(request)
