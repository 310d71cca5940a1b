"""Accounts function: CRUD with balances as Money."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.limits import REFUSAL
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.schemas import AccountOut, ListOf, dump
from valorize.service import requests as c


def render(account: object) -> object:
    return dump(AccountOut.of(account))  # type: ignore[arg-type]


def list_accounts(call: Call) -> object:
    page = bootstrap.services().accounts.list(call.user_id, call.query.limit, call.query.cursor)
    return dump(
        ListOf[AccountOut](
            data=[AccountOut.of(a) for a in page.items], next_cursor=page.next_cursor
        )
    )


def create_account(call: Call) -> object:
    return bootstrap.services().accounts.create(call.user_id, call.body, call.idem)


def get_account(call: Call) -> object:
    return bootstrap.services().accounts.get(call.user_id, call.params["account_id"])


def update_account(call: Call) -> object:
    return bootstrap.services().accounts.update(call.user_id, call.params["account_id"], call.body)


def delete_account(call: Call) -> None:
    bootstrap.services().accounts.delete(
        call.user_id, call.params["account_id"], call.query.confirm
    )


app = FunctionApp(
    "accounts",
    [
        Route(
            "GET",
            "/api/accounts",
            list_accounts,
            "List the caller's accounts",
            query=c.Page,
            response=ListOf[AccountOut],
        ),
        Route(
            "POST",
            "/api/accounts",
            create_account,
            "Create an account with an opening balance",
            body=c.CreateAccount,
            response=AccountOut,
            render=render,
            status=201,
        ),
        Route(
            "GET",
            "/api/accounts/<account_id>",
            get_account,
            "One account with its balance",
            response=AccountOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "PATCH",
            "/api/accounts/<account_id>",
            update_account,
            "Change an account (currency only while it has no transactions; the balance moves "
            f"with the opening balance: {REFUSAL})",
            body=c.UpdateAccount,
            response=AccountOut,
            render=render,
            errors=(404, 409),
        ),
        Route(
            "DELETE",
            "/api/accounts/<account_id>",
            delete_account,
            "Delete an account; with transactions it needs ?confirm=true and removes them",
            query=c.DeleteAccount,
            errors=(404, 409),
        ),
    ],
)


@functions_framework.http
def accounts(request: flask.Request) -> flask.Response:
    return app(request)
