"""Budgets function: envelopes, monthly income, allocate, move money, month overview
(service/budgets.py)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.budget_schemas import (
    BudgetList,
    BudgetOut,
    MonthSummaryOut,
    MoveOut,
    OverviewOut,
)
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Call, Idempotency, Resource, Route
from valorize.service.requests import budgets as b

resource = Resource("/api/budgets", "budget_id", lambda s: s.budgets, BudgetOut)
CLAIM = Idempotency.CLAIM


def create_budget(call: Call) -> Any:
    budget, created = call.services.budgets.create(call.user_id, call.body)
    if not created:
        call.status = 200  # the category already had its envelope: here it is
    return budget


def set_income(call: Call) -> Any:
    return call.services.budgets.set_income(call.user_id, call.body)


def allocate(call: Call) -> Any:
    return call.services.budgets.allocate(call.user_id, call.body)


def move_money(call: Call) -> Any:
    return call.services.budgets.move(call.user_id, call.body)


def month_summary(call: Call) -> Any:
    return call.services.budgets.month_summary(call.user_id, call.query.month)


def overview(call: Call) -> Any:
    return call.services.budgets.overview(call.user_id, call.query.month)


app = FunctionApp(
    "budgets",
    [
        resource.list(
            "The caller's envelopes, by name", query=None, response=BudgetList, cached=True
        ),
        Route(
            "POST",
            "/api/budgets",
            create_budget,
            "Create the envelope of a category (201), or get the one it has (200)",
            body=b.CreateBudget,
            response=BudgetOut,
            status=201,
            statuses=(200,),
            idempotency=CLAIM,
        ),
        Route(
            "GET",
            "/api/budgets/overview",
            overview,
            "Per envelope: budgeted, spent, rollover, available; and the month summary",
            query=b.MonthQuery,
            response=OverviewOut,
            cached=True,
        ),
        Route(
            "GET",
            "/api/budgets/summary",
            month_summary,
            "Income (own or inherited), assigned and unassigned for a month",
            query=b.MonthQuery,
            response=MonthSummaryOut,
            cached=True,
        ),
        Route(
            "POST",
            "/api/budgets/income",
            set_income,
            "Set a month's income to budget",
            body=b.SetIncome,
            response=MonthSummaryOut,
            idempotency=CLAIM,
        ),
        Route(
            "POST",
            "/api/budgets/allocate",
            allocate,
            "Assign an amount to an envelope for a month (replaces; capped by the income, "
            "422 with `remaining` when over)",
            body=b.Allocate,
            response=BudgetOut,
            errors=(404,),
            idempotency=CLAIM,
        ),
        Route(
            "POST",
            "/api/budgets/move",
            move_money,
            "Move money between two envelopes in a month (not capped)",
            body=b.MoveMoney,
            response=MoveOut,
            errors=(404,),
            idempotency=CLAIM,
        ),
        resource.get("One envelope", cached=True),
        resource.update("Rename an envelope", body=b.RenameBudget, verb="rename"),
        resource.delete("Delete an envelope and its allocations"),
    ],
    bootstrap.build(),
)


@functions_framework.http
def budgets(request: flask.Request) -> flask.Response:
    return app(request)
