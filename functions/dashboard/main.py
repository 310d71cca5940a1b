"""Dashboard function: every answer from precomputed read models, through the Redis cache."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints import dashboard_schemas as q
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.schemas import TransactionOut, dump


def _said(call: Call, value: object) -> object:
    outcome = getattr(bootstrap.services().query_cache.last, "outcome", "bypass")
    call.response_headers["X-Cache"] = outcome
    return value


def summary(call: Call) -> object:
    return _said(call, bootstrap.services().dashboard.summary(call.user_id, call.query.month))


def trend(call: Call) -> object:
    view = bootstrap.services().dashboard.trend(call.user_id, call.query.end, call.query.months)
    return _said(call, view)


def spending(call: Call) -> object:
    view = bootstrap.services().dashboard.spending(call.user_id, call.query.month, call.query.top)
    return _said(call, view)


def recent(call: Call) -> object:
    items = bootstrap.services().dashboard.recent(call.user_id, call.query.limit)
    return {"data": [dump(TransactionOut.of(t)) for t in items]}


def accounts(call: Call) -> object:
    return _said(call, bootstrap.services().dashboard.accounts(call.user_id, call.query.month))


def category(call: Call) -> object:
    view = bootstrap.services().dashboard.category_insights(
        call.user_id, call.params["category_id"], call.query.end, call.query.months
    )
    return _said(call, view)


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
        ),
        Route(
            "GET",
            "/api/dashboard/trend",
            trend,
            "Income, expense and net for the last N months (empty months are zero)",
            query=q.TrendQuery,
            response=q.TrendOut,
        ),
        Route(
            "GET",
            "/api/dashboard/spending",
            spending,
            "Spending by category for a month: top N with share %, plus other",
            query=q.SpendingQuery,
            response=q.SpendingOut,
        ),
        Route(
            "GET",
            "/api/dashboard/recent",
            recent,
            "The latest transactions",
            query=q.RecentQuery,
            response=q.RecentOut,
        ),
        Route(
            "GET",
            "/api/dashboard/accounts",
            accounts,
            "Accounts with balances and the month's flows",
            query=q.MonthQuery,
            response=q.AccountsOut,
        ),
        Route(
            "GET",
            "/api/dashboard/categories/<category_id>",
            category,
            "One category: totals, monthly series and split by account",
            query=q.InsightsQuery,
            response=q.InsightsOut,
            errors=(404,),
        ),
    ],
)


@functions_framework.http
def dashboard(request: flask.Request) -> flask.Response:
    return app(request)
