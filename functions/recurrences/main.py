"""Recurrences function: CRUD of scheduled transactions; the automate function creates their
occurrences."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.recurrence_schemas import RecurrenceList, RecurrenceOut
from valorize.service.requests import recurrences as rc
from valorize.service.requests import Page
from valorize.service.recurrences import recurrence_out


def render(rec: object) -> object:
    return recurrence_out(rec)  # type: ignore[arg-type]


def list_recurrences(call: Call) -> object:
    page = bootstrap.services().recurrences.list(call.user_id, call.query.limit, call.query.cursor)
    return {"data": [recurrence_out(x) for x in page.items], "next_cursor": page.next_cursor}


def create_recurrence(call: Call) -> object:
    return bootstrap.services().recurrences.create(call.user_id, call.body, call.idem)


def get_recurrence(call: Call) -> object:
    return bootstrap.services().recurrences.get(call.user_id, call.params["recurrence_id"])


def update_recurrence(call: Call) -> object:
    return bootstrap.services().recurrences.update(
        call.user_id, call.params["recurrence_id"], call.body
    )


def delete_recurrence(call: Call) -> None:
    bootstrap.services().recurrences.delete(call.user_id, call.params["recurrence_id"])


app = FunctionApp(
    "recurrences",
    [
        Route(
            "GET",
            "/api/recurrences",
            list_recurrences,
            "The caller's recurrences (oldest first), each with its next_due",
            query=Page,
            response=RecurrenceList,
        ),
        Route(
            "POST",
            "/api/recurrences",
            create_recurrence,
            "Create a recurrence (monthly, weekly, yearly, every N days)",
            body=rc.CreateRecurrence,
            response=RecurrenceOut,
            render=render,
            status=201,
        ),
        Route(
            "GET",
            "/api/recurrences/<recurrence_id>",
            get_recurrence,
            "One recurrence",
            response=RecurrenceOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "PATCH",
            "/api/recurrences/<recurrence_id>",
            update_recurrence,
            "Change a recurrence; occurrences already created stay, none is created twice",
            body=rc.UpdateRecurrence,
            response=RecurrenceOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "DELETE",
            "/api/recurrences/<recurrence_id>",
            delete_recurrence,
            "Delete a recurrence (the transactions it created stay)",
            errors=(404,),
        ),
    ],
)


@functions_framework.http
def recurrences(request: flask.Request) -> flask.Response:
    return app(request)
