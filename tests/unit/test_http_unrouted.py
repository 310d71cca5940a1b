"""A path functions-framework's own route does not match (a newline in it) is still answered
by the pipeline, as problem+json, not by Flask's HTML 404 (issue 12: schemathesis sent one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from functions_framework import create_app

MAIN = """
import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Route


def one(call):
    return {"id": call.params["account_id"]}


app = FunctionApp(
    "things", [Route("GET", "/api/things/<account_id>", one, "One", auth=False)], bootstrap.build()
)


@functions_framework.http
def things(request: flask.Request) -> flask.Response:
    return app(request)
"""


@pytest.mark.parametrize("path", ["/api/things/%0A", "/api/things/a%0Ab", "/api/%0D%0A/x"])
def test_a_newline_in_a_path_is_a_problem_404(tmp_path: Path, path: str) -> None:
    source = tmp_path / "main.py"
    source.write_text(MAIN, encoding="utf-8")
    client = create_app("things", str(source)).test_client()
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.get_json()["status"] == 404
    assert client.get("/api/things/" + "0" * 32).status_code == 200
