"""Instances start warm: FunctionApp warms the clients its settings name on a thread while the
server starts, and /healthz answers 503 until that is done (then 200, also when a backend was
down: the clients are then built on first use)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

import flask
import pytest

from tests import fakes
from valorize.bootstrap import Services
from valorize.config import Settings
from valorize.entrypoints.http import FunctionApp

FLASK = flask.Flask(__name__)
WAIT = 10.0


class Unreachable:
    """A client whose backend is down: every call fails."""

    def __getattr__(self, name: str) -> Any:
        raise ConnectionError(f"{name}: backend down")


def app_of(services: Services) -> FunctionApp:
    return FunctionApp("transactions", [], services)


def healthz(app: FunctionApp) -> flask.Response:
    with FLASK.test_request_context("/api/transactions/healthz", method="GET"):
        return app(flask.request)


def test_healthz_is_503_until_the_warm_up_is_done() -> None:
    services = fakes.build(Settings(warm_clients=("firestore", "redis")))
    release, entered = threading.Event(), threading.Event()
    asked: list[list[str]] = []

    def warm(clients: Iterable[str]) -> dict[str, float | None]:
        asked.append(list(clients))
        entered.set()
        release.wait(WAIT)
        return {}

    services.warm = warm  # type: ignore[method-assign]
    app = app_of(services)
    assert not entered.is_set()  # nothing before this process serves (or forks a worker)

    waiting = healthz(app)
    assert entered.wait(WAIT)
    assert waiting.status_code == 503
    assert waiting.mimetype == "application/problem+json"
    assert waiting.headers["Retry-After"] == "1"
    assert waiting.get_json()["status"] == 503

    release.set()
    assert app.warmed.wait(WAIT)
    ready = healthz(app)
    assert ready.status_code == 200 and ready.get_json() == {"status": "ok"}
    assert asked == [["firestore", "redis"]]


def test_a_warm_up_that_fails_still_lets_the_instance_serve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = fakes.build(Settings(warm_clients=("firestore",)))

    def warm(clients: Iterable[str]) -> dict[str, float | None]:
        raise RuntimeError("emulator gone")

    services.warm = warm  # type: ignore[method-assign]
    app = app_of(services)
    healthz(app)
    assert app.warmed.wait(WAIT)
    assert healthz(app).status_code == 200
    assert "warm-up failed" in caplog.text


def test_without_clients_to_warm_the_instance_is_ready_at_once() -> None:
    app = app_of(fakes.build(Settings()))
    assert healthz(app).status_code == 200


def test_a_forked_worker_warms_its_own_clients() -> None:
    """functions-framework forks gunicorn's workers after importing main.py: the worker, not
    the parent, holds the connections, so the worker starts warming as it is forked."""
    read, write = os.pipe()
    services = fakes.build(Settings(warm_clients=("firestore",)))
    warmed_in: list[int] = []

    def warm(clients: Iterable[str]) -> dict[str, float | None]:
        warmed_in.append(os.getpid())
        return {}

    services.warm = warm  # type: ignore[method-assign]
    app = app_of(services)
    child = os.fork()
    if child == 0:  # the worker: report and leave at once, whatever happens
        try:
            ok = app.warmed.wait(WAIT) and warmed_in == [os.getpid()]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 1) == b"1"
    assert warmed_in == []  # the parent warmed nothing


def test_each_client_is_warmed_on_its_own_and_a_down_one_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Redis:
        pinged = 0

        def ping(self) -> bool:
            self.pinged += 1
            return True

    redis = Redis()
    services = fakes.build(Settings(), firestore=Unreachable(), redis=redis)
    took = services.warm(["firestore", "redis"])
    assert took["firestore"] is None and took["redis"] is not None
    assert redis.pinged == 1
    assert "warm-up of firestore failed" in caplog.text


def test_the_revocation_feed_is_subscribed_before_the_first_request() -> None:
    class Feed:
        syncs = 0

        def announce(self, token_id: str) -> None:
            pass

        def sync(self, forget: Any, reset: Any) -> bool:
            self.syncs += 1
            return True

    feed = Feed()
    services = fakes.build(Settings(token_cache_seconds=60), revocations=feed)
    assert services.warm(["revocations"])["revocations"] is not None
    assert feed.syncs == 1


def test_an_unknown_client_is_a_mistake_not_a_skip() -> None:
    with pytest.raises(ValueError, match="no client 'postgres'"):
        fakes.build(Settings()).warm(["postgres"])


def test_the_warm_up_also_builds_the_functions_own_service() -> None:
    """Building a function's service imports its adapters and wires the bus (about 40 ms of
    CPU for transactions): work its first request would otherwise do after readiness."""
    services = fakes.build(Settings(warm_clients=("firestore",)))
    services.warm = lambda clients: {}  # type: ignore[method-assign]
    app = app_of(services)
    assert "transactions" not in vars(services)
    healthz(app)
    assert app.warmed.wait(WAIT)
    assert "transactions" in vars(services) and "bus" in vars(services)


def test_a_function_named_unlike_its_service_says_which_it_uses() -> None:
    services = fakes.build(Settings(warm_clients=("firestore",)))
    services.warm = lambda clients: {}  # type: ignore[method-assign]
    app = FunctionApp("ingest", [], services, service="imports")
    healthz(app)
    assert app.warmed.wait(WAIT)
    assert "imports" in vars(services)
    # A name that is no service warms nothing more (and is refused when the app is made).
    with pytest.raises(ValueError, match="no service 'nope' to warm"):
        FunctionApp("nope", [], services, service="nope")
