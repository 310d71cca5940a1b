"""Transactions function: CRUD, splits, transfers, filtered cursor listing."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.domain.limits import REFUSAL
from valorize.entrypoints.http import Call, FunctionApp, Route, cached
from valorize.entrypoints.schemas import ListOf, TransactionOut, TransferOut, dump
from valorize.service import requests as c


def render(txn: object) -> object:
    return dump(TransactionOut.of(txn))  # type: ignore[arg-type]


def render_transfer(pair: object) -> object:
    return dump(TransferOut.of(pair))  # type: ignore[arg-type]


def list_transactions(call: Call) -> object:
    # Pages are cached per user; any write bumps the user's version, so a hit is never stale.
    key = "txns:" + call.query.model_dump_json(by_alias=True, exclude_defaults=True)
    return cached(call, key, lambda: _page(call))


def _page(call: Call) -> object:
    page = bootstrap.services().transactions.list(call.user_id, call.query)
    return dump(
        ListOf[TransactionOut](
            data=[TransactionOut.of(t) for t in page.items], next_cursor=page.next_cursor
        )
    )


def create_transaction(call: Call) -> object:
    return bootstrap.services().transactions.create(call.user_id, call.body, call.idem)


def create_transfer(call: Call) -> object:
    return bootstrap.services().transactions.transfer(call.user_id, call.body, call.idem)


def get_transaction(call: Call) -> object:
    return bootstrap.services().transactions.get(call.user_id, call.params["transaction_id"])


def update_transaction(call: Call) -> object:
    return bootstrap.services().transactions.update(
        call.user_id, call.params["transaction_id"], call.body
    )


def delete_transaction(call: Call) -> None:
    bootstrap.services().transactions.delete(call.user_id, call.params["transaction_id"])


app = FunctionApp(
    "transactions",
    [
        Route(
            "GET",
            "/api/transactions",
            list_transactions,
            "List transactions, newest first, filtered, with a cursor",
            query=c.ListTransactions,
            response=ListOf[TransactionOut],
        ),
        Route(
            "POST",
            "/api/transactions",
            create_transaction,
            f"Create a transaction; the account balance changes in the same write ({REFUSAL})",
            body=c.CreateTransaction,
            response=TransactionOut,
            render=render,
            status=201,
        ),
        Route(
            "POST",
            "/api/transactions/transfers",
            create_transfer,
            f"Move money between two of the caller's accounts (a linked pair; {REFUSAL})",
            body=c.CreateTransfer,
            response=TransferOut,
            render=render_transfer,
            status=201,
        ),
        Route(
            "GET",
            "/api/transactions/<transaction_id>",
            get_transaction,
            "One transaction",
            response=TransactionOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "PATCH",
            "/api/transactions/<transaction_id>",
            update_transaction,
            f"Change a transaction (a transfer's other side follows; {REFUSAL})",
            body=c.UpdateTransaction,
            response=TransactionOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "DELETE",
            "/api/transactions/<transaction_id>",
            delete_transaction,
            f"Delete a transaction (both sides of a transfer; {REFUSAL})",
            errors=(404, 422),
        ),
    ],
)


@functions_framework.http
def transactions(request: flask.Request) -> flask.Response:
    return app(request)
