"""Internal endpoints (Cloud Tasks / Cloud Scheduler targets) accept only the invoker's OIDC
token, checked against the configured audiences and callers: tokens signed by a test key,
verified by google-auth against a certs URL served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import pytest

from tests.support.oidc import SigningKey, certs_server
from valorize import bootstrap
from valorize.bootstrap import Services
from valorize.config import Settings
from valorize.domain.errors import Unauthorized
from valorize.entrypoints.internal import check_internal

# The function's run.app URL, as the tasks and the scheduler jobs address it (infra/cdktf).
AUDIENCE = "https://rules-123456789.us-central1.run.app"
TASKS = "tasks-invoker@valorize-prod.iam.gserviceaccount.com"
SCHEDULER = "scheduler-invoker@valorize-prod.iam.gserviceaccount.com"
FLASK = flask.Flask(__name__)
KEY = SigningKey()
INSTANCE: list[Services] = []
OTHER_KEY = SigningKey()
INSTANCE: list[Services] = []


@pytest.fixture(scope="module")
def certs_url() -> Iterator[str]:
    with certs_server(KEY) as url:
        yield url


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, certs_url: str) -> Iterator[None]:
    monkeypatch.delenv("VALORIZE_INTERNAL_SECRET", raising=False)
    monkeypatch.setenv("VALORIZE_INTERNAL_CALLERS", f"{TASKS},{SCHEDULER}")
    monkeypatch.setenv("VALORIZE_INTERNAL_AUDIENCES", AUDIENCE + "/")
    # A fresh instance per test: nothing of Google's keys cached yet.
    INSTANCE[:] = [bootstrap.build(Settings())]
    monkeypatch.setenv("VALORIZE_OIDC_CERTS_URL", certs_url)
    yield


def call(headers: dict[str, str], base_url: str = "http://localhost/") -> str:
    # Behind Cloud Run's front end the app can see http:// and any Host: never the audience.
    with FLASK.test_request_context(
        "/api/rules/apply/run", base_url=base_url, method="POST", headers=headers
    ):
        return check_internal(
            flask.request, Settings.from_env(), lambda: INSTANCE[0].oidc_transport
        )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_invokers_token_is_accepted_whatever_url_the_app_sees(configured: None) -> None:
    assert call(bearer(KEY.token(AUDIENCE, TASKS))) == TASKS
    assert call(bearer(KEY.token(AUDIENCE, SCHEDULER)), "http://10.0.0.7:8080/") == SCHEDULER


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no token"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="not a bearer"),
        pytest.param(bearer("vz_0123_usertoken"), id="a user's API token"),
        pytest.param(bearer(KEY.token("https://evil.example", TASKS)), id="wrong audience"),
        pytest.param(
            bearer(KEY.token(AUDIENCE.replace("https", "http"), TASKS)), id="http audience"
        ),
        pytest.param(bearer(OTHER_KEY.token(AUDIENCE, TASKS)), id="wrong signer"),
        pytest.param(
            bearer(KEY.token(AUDIENCE, TASKS, expires_in=60, issued_ago=3600)), id="expired"
        ),
        pytest.param(bearer(KEY.token(AUDIENCE, "someone@gmail.com")), id="a user's Google token"),
        pytest.param(
            bearer(KEY.token(AUDIENCE, "fn-auth@valorize-prod.iam.gserviceaccount.com")),
            id="another service account",
        ),
        pytest.param(
            bearer(KEY.token(AUDIENCE, TASKS, email_verified=False)), id="unverified email"
        ),
        pytest.param(
            bearer(KEY.token(AUDIENCE, TASKS, issuer="https://evil.example")), id="wrong issuer"
        ),
        pytest.param({"X-Valorize-Internal": "anything"}, id="shared secret in production"),
    ],
)
def test_anything_else_is_refused(configured: None, headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        call(headers)


def test_a_tampered_token_is_refused(configured: None) -> None:
    header, _payload, signature = KEY.token(AUDIENCE, "someone@gmail.com").split(".")
    _, genuine, _ = KEY.token(AUDIENCE, TASKS).split(".")
    with pytest.raises(Unauthorized):
        call(bearer(f"{header}.{genuine}.{signature}"))


def test_without_configured_callers_nothing_is_accepted(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VALORIZE_INTERNAL_CALLERS", "")
    with pytest.raises(Unauthorized):
        call(bearer(KEY.token(AUDIENCE, TASKS)))


def test_the_local_shared_secret_works_only_where_it_is_configured(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VALORIZE_INTERNAL_SECRET", "s3cret")
    assert call({"X-Valorize-Internal": "s3cret"}) == "internal-secret"
    with pytest.raises(Unauthorized):
        call({"X-Valorize-Internal": "s3cre"})


def test_google_keys_are_fetched_once_not_per_call(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[Any] = []
    session = INSTANCE[0].oidc_transport.session
    original = session.request

    def counting(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        fetched.append(getattr(response, "from_cache", False))
        return response

    monkeypatch.setattr(session, "request", counting)
    for _ in range(3):
        call(bearer(KEY.token(AUDIENCE, TASKS)))
    assert fetched[0] is False and all(fetched[1:]), fetched
