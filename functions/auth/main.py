"""Auth function: registration, login, personal API tokens."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.schemas import (
    IssuedTokenOut,
    ListOf,
    LoginOut,
    RegisteredOut,
    TokenOut,
    UserOut,
    dump,
)
from valorize.service import requests as c


def register(call: Call) -> object:
    user, issued = bootstrap.services().auth.register(call.body)
    return dump(RegisteredOut(user=UserOut.of(user), token=issued.plaintext))


def login(call: Call) -> object:
    issued = bootstrap.services().auth.login(call.body, call.client_ip)
    return dump(LoginOut(token=issued.plaintext, expires_at=issued.token.expires_at))


def me(call: Call) -> object:
    return dump(UserOut.of(bootstrap.services().auth.me(call.user_id)))


def list_tokens(call: Call) -> object:
    tokens = bootstrap.services().auth.list_tokens(call.user_id)
    return dump(ListOf[TokenOut](data=[TokenOut.of(t) for t in tokens], next_cursor=None))


def create_token(call: Call) -> object:
    return bootstrap.services().auth.create_token(call.user_id, call.body, call.idem)


def revoke_token(call: Call) -> None:
    bootstrap.services().auth.revoke_token(call.user_id, call.params["token_id"])


app = FunctionApp(
    "auth",
    [
        Route(
            "POST",
            "/api/auth/register",
            register,
            "Create a user; returns a first token",
            body=c.Register,
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
            body=c.Login,
            response=LoginOut,
            auth=False,
            errors=(429,),
        ),
        Route("GET", "/api/auth/me", me, "The calling user's profile", response=UserOut),
        Route(
            "GET",
            "/api/auth/tokens",
            list_tokens,
            "The caller's tokens (never their secrets)",
            response=ListOf[TokenOut],
        ),
        Route(
            "POST",
            "/api/auth/tokens",
            create_token,
            "Create a personal API token",
            body=c.CreateToken,
            response=IssuedTokenOut,
            status=201,
            render=lambda issued: dump(IssuedTokenOut.issued(issued)),
        ),
        Route(
            "DELETE", "/api/auth/tokens/<token_id>", revoke_token, "Revoke a token", errors=(404,)
        ),
    ],
)


@functions_framework.http
def auth(request: flask.Request) -> flask.Response:
    return app(request)
