"""Transactions function: CRUD, splits, transfers, filtered cursor listing
(service/transactions.py)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.limits import REFUSAL
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Call, Idempotency, Resource, Route
from valorize.entrypoints.schemas import ListOf, TransactionOut, TransferOut
from valorize.service import requests as r

resource = Resource("/api/transactions", "transaction_id", lambda s: s.transactions, TransactionOut)


def list_transactions(call: Call) -> Any:
    return call.services.transactions.list(call.user_id, call.query)


def create_transfer(call: Call) -> Any:
    return call.services.transactions.transfer(call.user_id, call.body, call.idem)


app = FunctionApp(
    "transactions",
    [
        Route(
            "GET",
            "/api/transactions",
            list_transactions,
            "List transactions, newest first, filtered, with a cursor",
            query=r.ListTransactions,
            response=ListOf[TransactionOut],
            cached=True,
        ),
        resource.create(
            f"Create a transaction; the account balance changes in the same write ({REFUSAL})",
            body=r.CreateTransaction,
        ),
        Route(
            "POST",
            "/api/transactions/transfers",
            create_transfer,
            f"Move money between two of the caller's accounts (a linked pair; {REFUSAL})",
            body=r.CreateTransfer,
            response=TransferOut,
            status=201,
            idempotency=Idempotency.ATOMIC,
        ),
        resource.get("One transaction", cached=True),
        resource.update(
            f"Change a transaction (a transfer's other side follows; {REFUSAL})",
            body=r.UpdateTransaction,
        ),
        resource.delete(
            f"Delete a transaction (both sides of a transfer; {REFUSAL})", errors=(404, 422)
        ),
    ],
    bootstrap.build(),
)


@functions_framework.http
def transactions(request: flask.Request) -> flask.Response:
    return app(request)
