"""Auth function: registration, login, personal API tokens (service/auth.py)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Call, Idempotency, Route
from valorize.entrypoints.schemas import (
    IssuedTokenOut,
    ListOf,
    LoginOut,
    RegisteredOut,
    TokenOut,
    UserOut,
)
from valorize.service import requests as r


def register(call: Call) -> Any:
    return call.services.auth.register(call.body)


def login(call: Call) -> Any:
    return call.services.auth.login(call.body, call.client_ip)


def me(call: Call) -> Any:
    return call.services.auth.me(call.user_id)


def list_tokens(call: Call) -> Any:
    return call.services.auth.list_tokens(call.user_id)


def create_token(call: Call) -> Any:
    return call.services.auth.create_token(call.user_id, call.body, call.idem)


def revoke_token(call: Call) -> None:
    call.services.auth.revoke_token(call.user_id, call.params["token_id"])


app = FunctionApp(
    "auth",
    [
        Route(
            "POST",
            "/api/auth/register",
            register,
            "Create a user; returns a first token",
            body=r.Register,
            response=RegisteredOut,
            status=201,
            auth=False,
            errors=(409,),
        ),
        Route(
            "POST",
            "/api/auth/login",
            login,
            "Exchange email + password for a 30-day token",
            body=r.Login,
            response=LoginOut,
            auth=False,
            errors=(401, 429),
        ),
        # Cached in the auth scope: bumped when a token of the user is issued, revoked or
        # marked used (service/auth.py `changed`); a profile never changes once registered.
        Route(
            "GET",
            "/api/auth/me",
            me,
            "The calling user's profile",
            response=UserOut,
            cached=True,
            cache_scope="auth",
        ),
        Route(
            "GET",
            "/api/auth/tokens",
            list_tokens,
            "The caller's tokens (never their secrets)",
            response=ListOf[TokenOut],
            cached=True,
            cache_scope="auth",
        ),
        Route(
            "POST",
            "/api/auth/tokens",
            create_token,
            "Create a personal API token",
            body=r.CreateToken,
            response=IssuedTokenOut,
            status=201,
            idempotency=Idempotency.ATOMIC,
        ),
        Route(
            "DELETE", "/api/auth/tokens/<token_id>", revoke_token, "Revoke a token", errors=(404,)
        ),
    ],
    bootstrap.build(),
)


@functions_framework.http
def auth(request: flask.Request) -> flask.Response:
    return app(request)
