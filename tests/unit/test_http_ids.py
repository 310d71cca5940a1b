"""The HTTP pipeline's side of the id forms: a path id of another form is a 404 before the
handler runs, a route cannot declare a parameter without a form, and an internal call whose
payload cannot be read is logged at ERROR."""

from __future__ import annotations

import json
import logging
from typing import Any

import flask
import pytest

from tests import fakes
from tests.unit.test_http import FLASK, Logs, fake_authenticate, logs  # noqa: F401
from valorize.config import INTERNAL_HEADER, Settings
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import PATH_IDS, Call, Route
from valorize.service.requests.automations import UserAutomation

TOKEN = "vz_0123456789abcdef_s3cr3t-t0k3n-that-must-never-be-logged"
SECRET = "s3cret"


def _never(_call: Call) -> Any:
    raise AssertionError("the handler ran")


@pytest.fixture
def app() -> FunctionApp:
    services = fakes.build(Settings(project="valorize-test", internal_secret=SECRET))
    return FunctionApp(
        "imports",
        [
            Route("GET", "/api/imports/<import_id>/rows/<row_id>", _never, "row"),
            Route("GET", "/api/imports/<import_id>", lambda call: {"id": "ok"}, "import"),
            Route(
                "POST",
                "/api/imports/tasks/user",
                lambda call: {"ok": True},
                "task",
                body=UserAutomation,
                internal=True,
                auth=False,
            ),
        ],
        services,
        authenticate=fake_authenticate,
    )


def send(app: FunctionApp, method: str, path: str, **kw: Any) -> flask.Response:
    with FLASK.test_request_context(path, method=method, **kw):
        return app(flask.request)


@pytest.mark.parametrize(
    "path",
    [
        "/api/imports/__main__/rows/000-0000001",
        "/api/imports/%2E%2E/rows/000-0000001",
        "/api/imports/k" + "0" * 31 + "/rows/..",
        "/api/imports/" + "0" * 32 + "/rows/000-000001",
        "/api/imports/" + "0" * 32 + "/rows/%2F",
        "/api/imports//rows/000-0000001",
        "/api/imports/" + "A" * 32,
        "/api/imports/" + "0" * 32 + "//",
    ],
)
def test_a_path_id_of_another_form_is_a_404_before_the_handler(app: FunctionApp, path: str) -> None:
    r = send(app, "GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 404 and r.mimetype == "application/problem+json", r.get_data()


def test_a_well_formed_id_reaches_the_handler(app: FunctionApp) -> None:
    r = send(app, "GET", "/api/imports/k" + "0" * 31, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.get_json() == {"id": "ok"}


def test_a_malformed_id_without_a_token_is_still_a_401(app: FunctionApp) -> None:
    assert send(app, "GET", "/api/imports/__main__").status_code == 401


def test_every_path_parameter_needs_an_id_form() -> None:
    with pytest.raises(ValueError, match="thing_id"):
        FunctionApp("things", [Route("GET", "/api/things/<thing_id>", _never, "x")], fakes.build())
    assert set(PATH_IDS) >= {"account_id", "transaction_id", "import_id", "row_id"}


def test_the_openapi_document_gives_each_path_id_its_pattern(app: FunctionApp) -> None:
    document = app.openapi()
    params = document["paths"]["/api/imports/{import_id}/rows/{row_id}"]["get"]["parameters"]
    assert {p["name"]: p["schema"]["pattern"] for p in params} == {
        "import_id": PATH_IDS["import_id"].pattern,
        "row_id": PATH_IDS["row_id"].pattern,
    }


def test_an_unreadable_internal_payload_is_422_and_an_error(
    app: FunctionApp,
    logs: Logs,  # noqa: F811
) -> None:
    body = json.dumps({"kind": "daily", "date": "2025-01-01", "user_id": "../x"})
    r = send(
        app,
        "POST",
        "/api/imports/tasks/user",
        data=body,
        content_type="application/json",
        headers={INTERNAL_HEADER: SECRET},
    )
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "user_id"
    [line] = [e for e in logs.entries() if "httpRequest" in e]
    assert line["severity"] == logging.getLevelName(logging.ERROR)
    assert line["dropped"] == "malformed internal payload: invalid request body: user_id"


def test_a_user_request_that_is_refused_stays_a_warning(app: FunctionApp, logs: Logs) -> None:  # noqa: F811
    send(app, "GET", "/api/imports/__main__", headers={"Authorization": f"Bearer {TOKEN}"})
    [line] = [e for e in logs.entries() if "httpRequest" in e]
    assert line["severity"] == "WARNING" and "dropped" not in line
