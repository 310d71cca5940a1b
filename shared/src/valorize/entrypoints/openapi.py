"""OpenAPI 3.1 generated from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from valorize.entrypoints.routes import PATH_IDS, Gone, Idempotency, Route
from valorize.entrypoints.schemas import Problem

REF = "#/components/schemas/{model}"
_STATUS_TEXT = {
    400: "Malformed JSON",
    401: "Missing, invalid or revoked token",
    404: "Not found (or another user's)",
    409: "Conflict",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Validation failed",
    429: "Rate limited: too many requests of this kind for this user; retry after Retry-After "
    "seconds",
    503: "A backend is unavailable",
}
# Any write can meet concurrent writes to the same data (adapters/firestore/contention.py).
_CONTENTION = (
    "Conflict. With Retry-After: concurrent writes to the same data outlasted this write's "
    "retries; nothing was written, send the same request again after Retry-After seconds"
)
_LOCATION = {
    "Location": {
        "description": "Where its progress is read",
        "schema": {"type": "string"},
    }
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "integer"},
    }
}


def _path(rule: str) -> tuple[str, list[str]]:
    names = re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", rule)
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule), names


def _plain_discriminators(node: Any) -> Any:
    """Drop a `discriminator` whose mapping is not all references: pydantic inlines a nested
    tagged union (rule conditions: by `field`, then by `op`) as the mapping's value, which
    OpenAPI does not allow. The `oneOf` stays, so the schema still says the same."""
    if isinstance(node, dict):
        mapping = (node.get("discriminator") or {}).get("mapping") or {}
        if any(not isinstance(v, str) for v in mapping.values()):
            node = {k: v for k, v in node.items() if k != "discriminator"}
        return {k: _plain_discriminators(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_discriminators(v) for v in node]
    return node


_IDEMPOTENCY_KEY = {
    Idempotency.ATOMIC: "Same key + same body within 24 h returns the first answer and writes "
    "nothing; a different body is refused with 422",
    Idempotency.SERVICE: "The same key with the same file returns the first upload; another "
    "file with that key is a 422",
}
_IDEMPOTENCY_KEY[Idempotency.CLAIM] = _IDEMPOTENCY_KEY[Idempotency.ATOMIC]


def _form(model: type[BaseModel]) -> dict[str, Any]:
    """A multipart/form-data body's schema, inline. A part left out is absent, never null, so
    an optional part is described by its type alone."""
    schema = model.model_json_schema()
    properties: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        given = [s for s in prop.get("anyOf", [prop]) if s.get("type") != "null"]
        merged = {**prop, **given[0]}
        properties[name] = {
            k: merged[k] for k in ("type", "format", "enum", "description") if k in merged
        }
    return {"type": "object", "required": schema.get("required", []), "properties": properties}


_SUCCESS_TEXT = {201: "Created", 202: "Accepted: continues in the background"}


def _success(r: Route, status: int, keyed: dict[Any, Any]) -> dict[str, Any]:
    if r.response is None:
        return {
            "description": "Deleted" if r.method == "DELETE" else _SUCCESS_TEXT.get(status, "OK")
        }
    schema = keyed[(r.response, "serialization")]
    if r.gone:
        # The task's subject was deleted since it was enqueued: {"status": "gone"}.
        schema = {"oneOf": [schema, keyed[(Gone, "serialization")]]}
    return {
        "description": _SUCCESS_TEXT.get(status, "OK"),
        "content": {"application/json": {"schema": schema}},
    }


def build_document(name: str, routes: list[Route]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = [(Problem, "serialization")]
    for r in routes:
        if r.body is not None:
            models.append((r.body, "validation"))
        if r.response is not None:
            models.append((r.response, "serialization"))
        if r.gone:
            models.append((Gone, "serialization"))
    keyed, defs = models_json_schema(models, ref_template=REF)
    schemas: dict[str, Any] = defs.get("$defs", {})

    paths: dict[str, Any] = {}
    for r in routes:
        path, names = _path(r.path)
        op: dict[str, Any] = {
            "summary": r.summary,
            "operationId": f"{name}_{r.handler.__name__}",
            "tags": [name],
            "parameters": [
                {
                    "name": n,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": PATH_IDS[n].pattern},
                }
                for n in names
            ],
            "responses": {},
        }
        if r.query is not None:
            props = r.query.model_json_schema(by_alias=True, ref_template=REF)
            schemas.update(props.get("$defs", {}))
            required = set(props.get("required", []))
            for pname, pschema in props.get("properties", {}).items():
                op["parameters"].append(
                    {
                        "name": pname,
                        "in": "query",
                        "required": pname in required,
                        "schema": {k: v for k, v in pschema.items() if k != "title"},
                        **(
                            {"description": pschema["description"]}
                            if "description" in pschema
                            else {}
                        ),
                    }
                )
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": keyed[(r.body, "validation")]}},
            }
        if r.idempotency is not None:
            op["parameters"].append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": _IDEMPOTENCY_KEY[r.idempotency],
                }
            )
        if r.method == "DELETE":
            op["responses"]["204"] = {"description": "Deleted"}
            if r.response is not None:
                # A delete that may continue in the background: the answer is its progress.
                progress = _success(r, r.status, keyed)
                op["responses"][str(r.status)] = {**progress, "headers": _LOCATION}
        else:
            for status in (r.status, *r.statuses):
                op["responses"][str(status)] = _success(r, status, keyed)
        codes = set(r.errors)
        if r.auth:
            codes.add(401)
            op["security"] = [{"bearer": []}]
        if r.body is not None:
            codes |= {400, 413, 415, 422}
        if r.query is not None or names:
            codes.add(422 if r.query is not None else 404)
        if r.idempotency is not None:
            codes.add(422)  # a malformed Idempotency-Key, or one reused with another body
        writes = r.method != "GET"
        if writes:
            codes.add(409)
        if writes and r.auth:
            codes.add(429)  # the per-user write (and upload) rate limits, README "Limits"
        for code in sorted(codes):
            contended = writes and code == 409
            retry = contended or code == 429
            op["responses"][str(code)] = {
                "description": _CONTENTION if contended else _STATUS_TEXT.get(code, "Error"),
                **({"headers": _RETRY_AFTER} if retry else {}),
                "content": {
                    "application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}
                },
            }
        if r.form is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": _form(r.form)}},
            }
        paths.setdefault(path, {})[r.method.lower()] = op

    return {
        "openapi": "3.1.0",
        "info": {"title": f"ValorizeAI {name} API", "version": "1.0.0"},
        "paths": _plain_discriminators(paths),
        "components": {
            "schemas": _plain_discriminators(schemas),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal API token (vz_...)",
                }
            },
        },
    }


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "ValorizeAI API",
            "version": "1.0.0",
            "description": "Every function's routes, as served behind /api/<resource>/",
        },
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {}},
    }
    for doc in documents:
        merged["paths"].update(doc["paths"])
        merged["components"]["schemas"].update(doc["components"]["schemas"])
        merged["components"]["securitySchemes"].update(doc["components"]["securitySchemes"])
    merged["paths"] = dict(sorted(merged["paths"].items()))
    merged["components"]["schemas"] = dict(sorted(merged["components"]["schemas"].items()))
    return merged
