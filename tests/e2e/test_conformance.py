"""The API against its own OpenAPI document: schemathesis generates requests for every public
operation of the merged document (openapi/openapi.json, kept current by tests/unit/
test_openapi.py), sends them through the real gateway as a registered user, and checks each
answer: no 5xx, a documented status, a documented content type, a body matching its schema,
schema-invalid requests refused, schema-valid requests accepted. Internal operations (Cloud
Tasks and Scheduler targets, which the gateway never forwards) go to their function directly
with the stack's internal credentials.

Bounded for the suite (`VALORIZE_CONFORMANCE_EXAMPLES`, default 8 per operation and mode,
derandomized so CI sees the same requests every run); `nox -s hostile` runs it with many more
and writes its figures to load/results/reliability.md (`VALORIZE_CONFORMANCE_TALLY`)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devstack.gateway import is_blocked
from devstack.stack import Stack
from functions.registry import function_for, internal_paths, public_routes
from tests.e2e.conftest import Api, assert_problem, register

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = json.loads((ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
EXAMPLES = int(os.environ.get("VALORIZE_CONFORMANCE_EXAMPLES", "8"))
# Where `nox -s hostile` collects the figures of a run (a JSON file); unset in the suite.
TALLY = os.environ.get("VALORIZE_CONFORMANCE_TALLY")


def _prefix(path: str) -> str:
    return path.split("/")[2]


def is_public(path: str) -> bool:
    """What the load balancer (and the local gateway) forwards."""
    return _prefix(path) in public_routes() and not is_blocked(path, internal_paths())


# A registration hashes its password (argon2, ~0.4 s here): the suite's bounded run leaves out
# its coverage cases (about 200 boundary values, 90 s); the long run (`nox -s hostile`) sends
# them too.
HASHING = "/api/auth/register"


def load(coverage: bool = True) -> Any:
    loaded = schemathesis.openapi.from_dict(DOCUMENT)
    loaded.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
    )
    if not coverage:
        loaded.config.phases.update(phases=["examples", "fuzzing"])
    return loaded


schema = load()
public = schema.include(lambda ctx: is_public(ctx.operation.path) and ctx.operation.path != HASHING)
internal = schema.exclude(lambda ctx: is_public(ctx.operation.path))
registration = load(coverage=TALLY is not None).include(path=HASHING)

BOUNDED = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
    # No shrinking: every request goes through the whole stack (a registration costs seconds
    # of password hashing), and the failing request is reported as sent.
    phases=[Phase.explicit, Phase.generate],
)


def problems_name_fields(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """The contract beyond the document: an error is problem+json, and a 422 names the
    fields it refused."""
    if response.status_code < 400:
        return None
    kind = response.headers.get("content-type", [""])[0]
    assert kind.startswith("application/problem+json"), (response.status_code, kind)
    body = response.json()
    assert body["status"] == response.status_code, body
    if response.status_code == 422:
        assert body.get("errors") and all("field" in e for e in body["errors"]), body
    return None


# What a schema-valid request may still be refused for, because no JSON Schema of independent
# fields can say it: what is stored (a reference to something the user does not have, a cursor
# the API never issued, a per-user ceiling, an Idempotency-Key already used with another body,
# the user's preferred currency), one field against another, or today's date. Every other
# refusal of a schema-valid request is a disagreement to fix, in the API or in the document.
STATEFUL_REFUSALS = re.compile(
    "(Value error, )?(?:"
    + "|".join(
        [
            r"no such [a-z ]+",
            r"not a cursor this API returned",
            r"at most [0-9,]+ [a-z ]+ per user",
            r"reused with a different request",
            r"budgets are in your preferred currency, [A-Z]{3}",
            r"must differ from [a-z_]+",
            r"must not exceed [a-z_]+",
            r"must not be (before|after) '?[a-z_]+'?",
            r"a rule sets the category or the description once",
            # RE2 (rules' regular expressions): JSON Schema's "regex" format is ECMA 262.
            r"not a regular expression rules can run \(.*\): patterns use RE2 syntax.*",
            r"at most [0-9]+ days in the (past|future) \(on or (after|before) [0-9-]+\)",
        ]
    )
    + ")"
)
UPLOAD = "POST /api/imports"


def _integral_float(body: Any, field: str) -> bool:
    """Whether the body has a float with no fraction (1.0) at `field`: JSON Schema counts it
    an integer, the contract refuses a float amount (README, "Money")."""
    for part in field.split("."):
        if isinstance(body, dict) and part in body:
            body = body[part]
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        # else: a union's tag pydantic puts in the path ("schedule.weekly.interval")
    return isinstance(body, float) and body.is_integer()


def schema_valid_is_accepted(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """schemathesis' positive_data_acceptance, less the refusals above: a request its
    document calls valid is answered 2xx (or 401/403/404/409/429, which depend on who asks
    and what exists)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status < 300 or status in (401, 403, 404, 409, 429):
        return None
    if status in (415, 422) and case.operation.label == UPLOAD:
        return None  # the file is not a statement we read: the document cannot say which are
    if status == 422:
        errors = response.json().get("errors", [])
        if errors and all(
            STATEFUL_REFUSALS.fullmatch(e["message"]) or _integral_float(case.body, e["field"])
            for e in errors
        ):
            return None
    raise AssertionError(f"a schema-valid request was refused: {status} {response.text[:300]}")


CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    schema_valid_is_accepted,
    problems_name_fields,
]


@dataclass
class Tally:
    """Figures of a run, for `nox -s hostile`: per operation, requests, 5xx and failures."""

    requests: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, label: str, status: int, failure: BaseException | None) -> None:
        with self.lock:
            self.requests[label] += 1
            self.classes[f"{status // 100}xx"] += 1
            if status >= 500:
                self.server_errors[label] += 1
            if failure is not None:
                self.failures[label] += 1
                self.samples.setdefault(label, [])
                if len(self.samples[label]) < 3:
                    self.samples[label].append(str(failure)[:400])

    def write(self, path: str) -> None:
        with self.lock:
            data = {
                "examples": EXAMPLES,
                "operations": sorted(self.requests),
                "requests": dict(self.requests),
                "classes": dict(self.classes),
                "server_errors": dict(self.server_errors),
                "failures": dict(self.failures),
                "samples": self.samples,
            }
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


TALLIED = Tally()


@pytest.fixture(scope="module", autouse=True)
def _write_tally() -> Iterator[None]:
    yield
    if TALLY:
        TALLIED.write(TALLY)


def run(case: Any, base_url: str, headers: dict[str, str]) -> None:
    label = case.operation.label
    try:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
    except Exception as e:  # a dropped connection is as bad as a 5xx
        TALLIED.record(label, 599, e)
        raise
    failure: BaseException | None = None
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except (Failure, FailureGroup, AssertionError) as e:
        failure = e
    TALLIED.record(label, response.status_code, failure)
    if failure is not None:
        raise failure


@pytest.fixture
def user(base_url: str) -> Api:
    """A fresh user per operation: one operation's writes (a ceiling reached, a rate limit)
    never decide another's answers."""
    return register(base_url)


@public.parametrize()
@BOUNDED
def test_public_operations_conform_to_the_document(case: Any, base_url: str, user: Api) -> None:
    run(case, base_url, {"Authorization": f"Bearer {user.token}"})


@registration.parametrize()
@BOUNDED
def test_registration_conforms_to_the_document(case: Any, base_url: str) -> None:
    run(case, base_url, {})


@internal.parametrize()
@BOUNDED
def test_internal_operations_conform_to_the_document(case: Any, stack: Stack) -> None:
    from valorize.config import INTERNAL_HEADER

    name = function_for(_prefix(case.operation.path)).name
    run(case, stack.urls.functions[name], {INTERNAL_HEADER: stack.secret})


@pytest.mark.parametrize("segment", ["%0A", "a%0Ab", "%09", "%0D%0A"])
def test_a_control_character_in_a_path_is_a_problem_404(api: Api, segment: str) -> None:
    """The gateway's routes matched "." (no newline): such a path got aiohttp's text/plain
    404 instead of the function's problem+json one."""
    r = api.request("PATCH", f"/api/imports/{segment}/rows/{segment}", json={"include": True})
    assert_problem(r, 404)
