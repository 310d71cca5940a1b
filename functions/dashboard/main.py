"""Dashboard function: every answer from precomputed read models (service/dashboard.py),
cached per user (routes declared `cached`)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints import dashboard_schemas as q
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Call, Route


def summary(call: Call) -> Any:
    return call.services.dashboard.summary(call.user_id, call.query.month)


def trend(call: Call) -> Any:
    d, query = call.services.dashboard, call.query
    return d.trend(call.user_id, query.end, query.months)


def spending(call: Call) -> Any:
    d, query = call.services.dashboard, call.query
    return d.spending(call.user_id, query.month, query.top)


def recent(call: Call) -> Any:
    return call.services.dashboard.recent(call.user_id, call.query.limit)


def accounts(call: Call) -> Any:
    return call.services.dashboard.accounts(call.user_id, call.query.month)


def category(call: Call) -> Any:
    d, query = call.services.dashboard, call.query
    category_id = call.params["category_id"]
    return d.category_insights(call.user_id, category_id, query.end, query.months)


app = FunctionApp(
    "dashboard",
    [
        Route(
            "GET",
            "/api/dashboard/summary",
            summary,
            "Total balance, income, expense and net of a month, per currency",
            query=q.MonthQuery,
            response=q.SummaryOut,
            cached=True,
        ),
        Route(
            "GET",
            "/api/dashboard/trend",
            trend,
            "Income, expense and net for the last N months (empty months are zero)",
            query=q.TrendQuery,
            response=q.TrendOut,
            cached=True,
        ),
        Route(
            "GET",
            "/api/dashboard/spending",
            spending,
            "Spending by category for a month: top N with share %, plus other",
            query=q.SpendingQuery,
            response=q.SpendingOut,
            cached=True,
        ),
        Route(
            "GET",
            "/api/dashboard/recent",
            recent,
            "The latest transactions",
            query=q.RecentQuery,
            response=q.RecentOut,
            cached=True,
        ),
        Route(
            "GET",
            "/api/dashboard/accounts",
            accounts,
            "Accounts with balances and the month's flows",
            query=q.MonthQuery,
            response=q.AccountsOut,
            cached=True,
        ),
        Route(
            "GET",
            "/api/dashboard/categories/<category_id>",
            category,
            "One category: totals, monthly series and split by account",
            query=q.InsightsQuery,
            response=q.InsightsOut,
            errors=(404,),
            cached=True,
        ),
    ],
    bootstrap.build(),
)


@functions_framework.http
def dashboard(request: flask.Request) -> flask.Response:
    return app(request)
