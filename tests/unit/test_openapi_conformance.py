"""The OpenAPI document says what the API does (issue 12, defect 3): each disagreement
schemathesis found (tests/e2e/test_conformance.py), pinned here without the stack."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from devstack.openapi import merged_document
from valorize.service.requests import ListTransactions


@cache
def document() -> dict[str, Any]:
    return merged_document()


def op(method: str, path: str) -> dict[str, Any]:
    return dict(document()["paths"][path][method])


def valid(schema: dict[str, Any], instance: Any) -> bool:
    """`instance` against a schema of the document (its $refs resolved in the document)."""
    rooted = {**schema, "components": document()["components"]}
    return Draft202012Validator(rooted).is_valid(instance)


def body_schema(method: str, path: str) -> dict[str, Any]:
    return dict(op(method, path)["requestBody"]["content"]["application/json"]["schema"])


def query_schema(method: str, path: str, name: str) -> dict[str, Any]:
    (param,) = [p for p in op(method, path)["parameters"] if p["name"] == name]
    return dict(param["schema"])


def test_a_failed_login_is_a_documented_401() -> None:
    assert "401" in op("post", "/api/auth/login")["responses"]


def test_a_budget_create_that_finds_the_envelope_documents_its_200() -> None:
    responses = op("post", "/api/budgets")["responses"]
    assert responses["200"]["content"] == responses["201"]["content"]


@pytest.mark.parametrize("action", ["commit", "revert"])
def test_a_large_commit_or_revert_documents_its_202(action: str) -> None:
    responses = op("post", f"/api/imports/{{import_id}}/{action}")["responses"]
    assert responses["202"]["content"] == responses["200"]["content"]


def test_every_idempotency_key_is_non_empty_and_its_refusal_a_documented_422() -> None:
    seen = 0
    for path, ops in document()["paths"].items():
        for method, operation in ops.items():
            keys = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
            if keys:
                seen += 1
                assert keys[0]["schema"]["minLength"] == 1, (method, path)
                assert "422" in operation["responses"], (method, path)
    assert "422" in op("post", "/api/notifications/{notification_id}/read")["responses"]
    assert seen > 10


def test_only_iso_4217_codes_are_documented_currencies() -> None:
    register = body_schema("post", "/api/auth/register")
    person = {"email": "a@example.com", "password": "a long password", "name": "A"}
    assert valid(register, {**person, "preferred_currency": "BRL"})
    assert not valid(register, {**person, "preferred_currency": "AAA"})


@pytest.mark.parametrize(
    ("method", "path", "where"),
    [
        ("post", "/api/budgets/income", "body"),
        ("get", "/api/dashboard/summary", "month"),
        ("get", "/api/dashboard/trend", "end"),
        ("get", "/api/budgets/overview", "month"),
    ],
)
def test_year_0000_is_no_documented_month(method: str, path: str, where: str) -> None:
    if where == "body":
        schema = body_schema(method, path)
        income = {"amount": {"amount": 1, "currency": "BRL"}}
        assert valid(schema, {**income, "month": "0001-01"})
        assert not valid(schema, {**income, "month": "0000-01"})
    else:
        schema = query_schema(method, path, where)
        assert valid(schema, "0001-01") and valid(schema, "2026-11")
        assert not valid(schema, "0000-01")


@pytest.mark.parametrize("value", ["0", "1700000000", "2026-1-1", "20261130"])
def test_a_query_date_is_yyyy_mm_dd_not_a_timestamp(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ListTransactions.model_validate({"to": value})
    assert refused.value.errors()[0]["loc"] == ("to",)
    assert str(ListTransactions.model_validate({"to": "2026-11-30"}).to) == "2026-11-30"


@pytest.mark.parametrize("task", ["process", "commit", "revert"])
def test_a_task_whose_import_is_gone_answers_in_its_schema(task: str) -> None:
    ok = op("post", f"/api/ingest/tasks/{task}")["responses"]["200"]
    assert valid(ok["content"]["application/json"]["schema"], {"status": "gone"})


def test_a_row_update_names_include_or_resolution() -> None:
    schema = body_schema("patch", "/api/imports/{import_id}/rows/{row_id}")
    assert valid(schema, {"include": False})
    assert valid(schema, {"resolution": "keep_existing"})
    assert not valid(schema, {})
    assert not valid(schema, {"include": None})


@pytest.mark.parametrize(
    ("path", "kept", "clearable"),
    [
        ("/api/accounts/{account_id}", "name", "bank_name"),
        ("/api/categories/{category_id}", "color", "parent_id"),
        ("/api/transactions/{transaction_id}", "amount", "category_id"),
        ("/api/recurrences/{recurrence_id}", "start", "end"),
    ],
)
def test_a_patch_documents_which_fields_null_clears(path: str, kept: str, clearable: str) -> None:
    schema = body_schema("patch", path)
    assert not valid(schema, {kept: None})
    assert valid(schema, {clearable: None})


@pytest.mark.parametrize("domain", ["07tjquwn.test", "x.LOCAL", "onion", "home.arpa."])
def test_special_use_email_domains_are_outside_the_document(domain: str) -> None:
    register = body_schema("post", "/api/auth/register")
    person = {"password": "a long password", "name": "A", "preferred_currency": "BRL"}
    assert valid(register, {**person, "email": "ana@example.com"})
    assert not valid(register, {**person, "email": f"ana@{domain}"})


@pytest.mark.parametrize("blank", [" ", "\t\n", "\x1c", "\u3000\u00a0"])
def test_a_blank_name_is_outside_the_document(blank: str) -> None:
    """Names are stripped, then need a character: the document says what strip() removes."""
    schema = body_schema("post", "/api/categories")
    assert valid(schema, {"name": " Food ", "color": "red"})
    assert not valid(schema, {"name": blank, "color": "red"})
    contains = {"field": "description", "op": "contains", "value": blank}
    rule = {
        "name": "r",
        "conditions": [contains],
        "actions": [{"action": "add_note", "value": "n"}],
    }
    assert not valid(body_schema("post", "/api/rules"), rule)


def test_an_amount_condition_names_a_bound() -> None:
    rule = {"name": "r", "actions": [{"action": "add_note", "value": "n"}]}
    schema = body_schema("post", "/api/rules")
    between = {"field": "amount", "op": "between"}
    assert valid(schema, {**rule, "conditions": [{**between, "value": {"min": 1}}]})
    assert not valid(schema, {**rule, "conditions": [{**between, "value": {}}]})
