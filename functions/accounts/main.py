"""Accounts function: CRUD with balances as Money (service/accounts.py)."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.limits import REFUSAL
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Resource
from valorize.entrypoints.schemas import AccountOut
from valorize.service import requests as r

resource = Resource("/api/accounts", "account_id", lambda s: s.accounts, AccountOut)

app = FunctionApp(
    "accounts",
    [
        resource.list("List the caller's accounts", cached=True),
        resource.create("Create an account with an opening balance", body=r.CreateAccount),
        resource.get("One account with its balance"),
        resource.update(
            "Change an account (currency only while it has no transactions; the balance moves "
            f"with the opening balance: {REFUSAL})",
            body=r.UpdateAccount,
            errors=(404, 409),
        ),
        resource.delete(
            "Delete an account; with transactions it needs ?confirm=true and removes them",
            query=r.DeleteAccount,
            errors=(404, 409),
        ),
    ],
    bootstrap.build(),
)


@functions_framework.http
def accounts(request: flask.Request) -> flask.Response:
    return app(request)
