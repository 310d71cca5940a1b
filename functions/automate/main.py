"""Automate function: Cloud Scheduler's runs (daily, month start) fanned out to one Cloud Task
per user with due work. Every route is internal: the scheduler's or the task queue's
credentials, never a user's token."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.automation_schemas import RunAcceptedOut, UserRunOut
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.service.requests import automations as a
from valorize.service.automations import run_day


def run(call: Call) -> object:
    body: a.RunAutomations = call.body
    service = bootstrap.services().automations
    on = run_day(
        body.date,
        call.request.headers.get("X-CloudScheduler-ScheduleTime"),
        service.clock.now(),
    )
    return service.run(body.kind, on)


def fan_out(call: Call) -> object:
    body: a.FanOutPage = call.body
    return bootstrap.services().automations.fan_out(body.kind, body.date, body.cursor, body.page)


def run_user(call: Call) -> object:
    body: a.UserAutomation = call.body
    return bootstrap.services().automations.run_user(body.user_id, body.kind, body.date)


app = FunctionApp(
    "automate",
    [
        Route(
            "POST",
            "/api/automations/run",
            run,
            "Cloud Scheduler: start a run (daily or month_start) for a day; fans out one task "
            "per user with due work. Running a day twice changes nothing the second time",
            body=a.RunAutomations,
            response=RunAcceptedOut,
            status=202,
            internal=True,
            auth=False,
            errors=(401,),
        ),
        Route(
            "POST",
            "/api/automations/fanout",
            fan_out,
            "Cloud Tasks: the next page of a run's fan-out",
            body=a.FanOutPage,
            response=RunAcceptedOut,
            status=202,
            internal=True,
            auth=False,
            errors=(401,),
        ),
        Route(
            "POST",
            "/api/automations/user",
            run_user,
            "Cloud Tasks: one user's share of a run (due occurrences, rules, notifications)",
            body=a.UserAutomation,
            response=UserRunOut,
            internal=True,
            auth=False,
            errors=(401,),
        ),
    ],
)


@functions_framework.http
def automate(request: flask.Request) -> flask.Response:
    return app(request)
