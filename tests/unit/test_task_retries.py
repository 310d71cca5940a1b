"""The ingest function's task routes read Cloud Tasks' X-CloudTasks-TaskRetryCount to know the
last attempt; a header that is not a count must not turn the task into a 500."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import flask
import pytest

from tests import fakes
from valorize.config import INTERNAL_HEADER, Settings
from valorize.entrypoints.http import FunctionApp

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cret"
USER = "ab" * 16
IMPORT = "k" + "0" * 31


class Imports:
    """The ImportService's task side, recording what the route asked."""

    def __init__(self) -> None:
        self.last_attempts: list[bool] = []

    def process(self, user_id: str, import_id: str, *, last_attempt: bool = False) -> Any:
        self.last_attempts.append(last_attempt)
        return None


@pytest.fixture
def ingest() -> tuple[FunctionApp, Imports]:
    """The ingest function's routes over fakes, with a recording ImportService."""
    spec = importlib.util.spec_from_file_location("ingest_main", ROOT / "functions/ingest/main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    imports = Imports()
    services = fakes.build(Settings(internal_secret=SECRET), imports=imports)
    return FunctionApp("ingest", module.app.routes[2:], services), imports


def send(app: FunctionApp, retries: str) -> flask.Response:
    with flask.Flask(__name__).test_request_context(
        "/api/ingest/tasks/process",
        method="POST",
        json={"user_id": USER, "import_id": IMPORT},
        headers={INTERNAL_HEADER: SECRET, "X-CloudTasks-TaskRetryCount": retries},
    ):
        return app(flask.request)


@pytest.mark.parametrize("retries", ["abc", "1.5", "-1", "", "٤", "4x"])
def test_a_retry_count_that_is_not_a_count_is_a_first_attempt(
    ingest: tuple[FunctionApp, Imports], retries: str
) -> None:
    app, imports = ingest
    resp = send(app, retries)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"status": "gone"}
    assert imports.last_attempts == [False]


def test_the_last_retry_is_the_last_attempt(ingest: tuple[FunctionApp, Imports]) -> None:
    app, imports = ingest
    assert send(app, "4").status_code == 200
    assert send(app, "0").status_code == 200
    assert imports.last_attempts == [True, False]
