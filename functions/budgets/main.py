"""Budgets function: envelopes, monthly income, allocate, move money, month overview."""

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
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.schemas import dump
from valorize.service.requests import budgets as b


def render(budget: object) -> object:
    return dump(BudgetOut.of(budget))  # type: ignore[arg-type]


def render_move(pair: object) -> object:
    source, target = pair  # type: ignore[misc]
    return dump(MoveOut.model_validate({"from": BudgetOut.of(source), "to": BudgetOut.of(target)}))


def _month(call: Call) -> str:
    return call.query.month or bootstrap.services().dashboard.this_month()


def list_budgets(call: Call) -> object:
    budgets = bootstrap.services().budgets.list(call.user_id)
    return dump(BudgetList(data=[BudgetOut.of(x) for x in budgets]))


def create_budget(call: Call) -> object:
    budget, created = bootstrap.services().budgets.create(call.user_id, call.body)
    if not created:
        call.status = 200  # the category already had its envelope: here it is
    return budget


def get_budget(call: Call) -> object:
    return bootstrap.services().budgets.get(call.user_id, call.params["budget_id"])


def rename_budget(call: Call) -> object:
    return bootstrap.services().budgets.rename(
        call.user_id, call.params["budget_id"], call.body.name
    )


def delete_budget(call: Call) -> None:
    bootstrap.services().budgets.delete(call.user_id, call.params["budget_id"])


def set_income(call: Call) -> object:
    return bootstrap.services().budgets.set_income(call.user_id, call.body)


def month_summary(call: Call) -> object:
    return bootstrap.services().budgets.month_summary(call.user_id, _month(call))


def allocate(call: Call) -> object:
    return bootstrap.services().budgets.allocate(call.user_id, call.body)


def move_money(call: Call) -> object:
    return bootstrap.services().budgets.move(call.user_id, call.body)


def overview(call: Call) -> object:
    return bootstrap.services().budgets.overview(call.user_id, _month(call))


app = FunctionApp(
    "budgets",
    [
        Route(
            "GET",
            "/api/budgets",
            list_budgets,
            "The caller's envelopes, by name",
            response=BudgetList,
        ),
        Route(
            "POST",
            "/api/budgets",
            create_budget,
            "Create the envelope of a category (201), or get the one it has (200)",
            body=b.CreateBudget,
            response=BudgetOut,
            render=render,
            status=201,
            idempotency="claim",
        ),
        Route(
            "GET",
            "/api/budgets/overview",
            overview,
            "Per envelope: budgeted, spent, rollover, available; and the month summary",
            query=b.MonthQuery,
            response=OverviewOut,
        ),
        Route(
            "GET",
            "/api/budgets/summary",
            month_summary,
            "Income (own or inherited), assigned and unassigned for a month",
            query=b.MonthQuery,
            response=MonthSummaryOut,
        ),
        Route(
            "POST",
            "/api/budgets/income",
            set_income,
            "Set a month's income to budget",
            body=b.SetIncome,
            response=MonthSummaryOut,
            render=lambda s: s,
            idempotency="claim",
        ),
        Route(
            "POST",
            "/api/budgets/allocate",
            allocate,
            "Assign an amount to an envelope for a month (replaces; capped by the income, "
            "422 with `remaining` when over)",
            body=b.Allocate,
            response=BudgetOut,
            render=render,
            errors=(404,),
            idempotency="claim",
        ),
        Route(
            "POST",
            "/api/budgets/move",
            move_money,
            "Move money between two envelopes in a month (not capped)",
            body=b.MoveMoney,
            response=MoveOut,
            render=render_move,
            errors=(404,),
            idempotency="claim",
        ),
        Route(
            "GET",
            "/api/budgets/<budget_id>",
            get_budget,
            "One envelope",
            response=BudgetOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "PATCH",
            "/api/budgets/<budget_id>",
            rename_budget,
            "Rename an envelope",
            body=b.RenameBudget,
            response=BudgetOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "DELETE",
            "/api/budgets/<budget_id>",
            delete_budget,
            "Delete an envelope and its allocations",
            errors=(404,),
        ),
    ],
)


@functions_framework.http
def budgets(request: flask.Request) -> flask.Response:
    return app(request)
