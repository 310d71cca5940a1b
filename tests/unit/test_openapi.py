"""The committed OpenAPI document is what the code generates (run `nox -s openapi`)."""

from __future__ import annotations

from pathlib import Path

from devstack.openapi import merged_document, render
from functions.registry import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_is_current() -> None:
    committed = (ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8")
    assert committed == render(), "openapi/openapi.json is stale: run `nox -s openapi`"


def test_every_function_is_documented_with_problem_errors() -> None:
    doc = merged_document()
    assert doc["openapi"] == "3.1.0"
    for name in FUNCTIONS:
        assert f"/api/{name}/healthz" in doc["paths"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert codes, (method, path)
            if op.get("security"):
                assert "401" in codes, (method, path)
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= codes, (method, path)
    money = doc["components"]["schemas"]["MoneyOut"]["properties"]["amount"]
    assert money["type"] == "integer"


def test_document_is_valid_openapi_3_1() -> None:
    from openapi_spec_validator import validate

    validate(merged_document())  # raises on the first violation
