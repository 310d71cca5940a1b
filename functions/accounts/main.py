"""Accounts function: CRUD with balances as Money, and the Cloud Tasks worker that deletes a
large account a page at a time (/api/accounts/tasks/*, internal only) (service/accounts.py)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.limits import REFUSAL
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Call, Resource, Route, task
from valorize.entrypoints.schemas import AccountDeletionOut, AccountOut
from valorize.service import requests as r

resource = Resource("/api/accounts", "account_id", lambda s: s.accounts, AccountOut)


def delete_account(call: Call) -> Any:
    account_id = call.params["account_id"]
    deletion = call.services.accounts.delete(call.user_id, account_id, call.query.confirm)
    if deletion is not None:
        call.status = 202
        call.response_headers["Location"] = f"/api/accounts/{account_id}/deletion"
    return deletion


def get_deletion(call: Call) -> Any:
    return call.services.accounts.deletion(call.user_id, call.params["account_id"])


def task_delete(call: Call) -> Any:
    body: r.AccountDeletionTask = call.body
    return call.services.accounts.run_deletion(body.user_id, body.account_id, body.step)


app = FunctionApp(
    "accounts",
    [
        resource.list("List the caller's accounts", cached=True),
        resource.create("Create an account with an opening balance", body=r.CreateAccount),
        resource.get("One account with its balance", cached=True),
        resource.update(
            "Change an account (currency only while it has no transactions; the balance moves "
            f"with the opening balance: {REFUSAL})",
            body=r.UpdateAccount,
            errors=(404, 409),
        ),
        Route(
            "DELETE",
            "/api/accounts/<account_id>",
            delete_account,
            "Delete an account; with transactions it needs ?confirm=true. Without "
            "transactions: 204, gone. With: 202, the account is hidden at once and its "
            "transactions are deleted in the background; the answer is the deletion's "
            "progress (Location: /api/accounts/{id}/deletion). Asked again while it runs: "
            "the same 202",
            query=r.DeleteAccount,
            response=AccountDeletionOut,
            status=202,
            errors=(404, 409),
        ),
        Route(
            "GET",
            "/api/accounts/<account_id>/deletion",
            get_deletion,
            "The progress of the account's deletion (running, then done; kept after the "
            "account is gone)",
            response=AccountDeletionOut,
            errors=(404,),
            # The ledger's: every write of the deletion (each page its worker deletes) bumps
            # it (service/cache_scopes.py ACCOUNTS).
            cached=True,
        ),
        task(
            "/api/accounts/tasks/delete",
            task_delete,
            "Cloud Tasks: delete a hidden account's transactions for a while, then hand on",
            body=r.AccountDeletionTask,
            response=AccountDeletionOut,
            gone=True,
        ),
    ],
    bootstrap.build(),
)


@functions_framework.http
def accounts(request: flask.Request) -> flask.Response:
    return app(request)
