"""Recurrences function: CRUD of scheduled transactions (service/recurrences.py); the automate
function creates their occurrences."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.recurrence_schemas import RecurrenceOut
from valorize.entrypoints.routes import Resource
from valorize.service.requests import recurrences as r

resource = Resource("/api/recurrences", "recurrence_id", lambda s: s.recurrences, RecurrenceOut)

app = FunctionApp(
    "recurrences",
    [
        # Cached in the recurrences scope: every write to the recurrence store, the automation
        # runs' included (they move next_due), bumps it (service/cache_scopes.py).
        resource.list(
            "The caller's recurrences (oldest first), each with its next_due",
            cached=True,
            cache_scope="recurrences",
        ),
        resource.create(
            "Create a recurrence (monthly, weekly, yearly, every N days)",
            body=r.CreateRecurrence,
        ),
        resource.get("One recurrence", cached=True, cache_scope="recurrences"),
        resource.update(
            "Change a recurrence; occurrences already created stay, none is created twice",
            body=r.UpdateRecurrence,
        ),
        resource.delete("Delete a recurrence (the transactions it created stay)"),
    ],
    bootstrap.build(),
)


@functions_framework.http
def recurrences(request: flask.Request) -> flask.Response:
    return app(request)
