"""Automate function: Cloud Scheduler's runs (daily, month start) fanned out to one Cloud Task
per user with due work (service/automations.py). Every route is internal: the scheduler's or
the task queue's credentials, never a user's token."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.automation_schemas import RunAcceptedOut, UserRunOut
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Call, task
from valorize.service.automations import run_day
from valorize.service.requests import automations as a


def run(call: Call) -> Any:
    service, body = call.services.automations, call.body
    scheduled = call.request.headers.get("X-CloudScheduler-ScheduleTime")
    return service.run(body.kind, run_day(body.date, scheduled, service.clock.now()))


def fan_out(call: Call) -> Any:
    body: a.FanOutPage = call.body
    return call.services.automations.fan_out(body.kind, body.date, body.cursor, body.page)


def run_user(call: Call) -> Any:
    body: a.UserAutomation = call.body
    return call.services.automations.run_user(body.user_id, body.kind, body.date)


app = FunctionApp(
    "automate",
    [
        task(
            "/api/automations/run",
            run,
            "Cloud Scheduler: start a run (daily or month_start) for a day; fans out one task "
            "per user with due work. Running a day twice changes nothing the second time",
            body=a.RunAutomations,
            response=RunAcceptedOut,
            status=202,
        ),
        task(
            "/api/automations/fanout",
            fan_out,
            "Cloud Tasks: the next page of a run's fan-out",
            body=a.FanOutPage,
            response=RunAcceptedOut,
            status=202,
        ),
        task(
            "/api/automations/user",
            run_user,
            "Cloud Tasks: one user's share of a run (due occurrences, rules, notifications)",
            body=a.UserAutomation,
            response=UserRunOut,
        ),
    ],
    bootstrap.build(),
    service="automations",
)


@functions_framework.http
def automate(request: flask.Request) -> flask.Response:
    return app(request)
