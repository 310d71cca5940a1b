"""The HTTP layer (FunctionApp) driven through Flask request contexts: no server, no network.

The app under test is a transactions-like function wired to the in-memory fakes, with a fake
`authenticate` and the in-memory store as its idempotency store."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import flask
import pytest
from google.api_core import exceptions as gexc

from tests.unit.conftest import USER, World, make_world
from valorize.domain.errors import (
    Conflict,
    Contention,
    DomainError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from valorize.entrypoints import routes
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.request_log import JsonLogFormatter, configure_logging
from valorize.entrypoints.routes import Call, Resource, Route
from valorize.entrypoints.schemas import ListOf, TransactionOut
from valorize.service import requests as c
from valorize.service.ports import IdempotencyRecord
from valorize.service.ports.cache import LEDGER, Outcome, Scope

TOKEN = "vz_0123456789abcdef_s3cr3t-t0k3n-that-must-never-be-logged"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLASK = flask.Flask(__name__)


@dataclass(frozen=True)
class FakePrincipal:
    user_id: str


def fake_authenticate(token: str) -> FakePrincipal:
    if token != TOKEN:
        raise Unauthorized("invalid or revoked token")
    return FakePrincipal(USER)


class Harness:
    """A FunctionApp over a World, plus a way to send it requests."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.raise_: Exception | None = None
        self.idem_lookups = True
        self.settings(project="valorize-test")

        def boom(_call: Call) -> Any:
            assert self.raise_ is not None
            raise self.raise_

        resource = Resource(
            "/api/transactions", "transaction_id", lambda s: s.transactions, TransactionOut
        )
        self.app = FunctionApp(
            "transactions",
            [
                Route(
                    "GET",
                    "/api/transactions",
                    lambda call: call.services.transactions.list(call.user_id, call.query),
                    "list",
                    query=c.ListTransactions,
                    response=ListOf[TransactionOut],
                ),
                resource.create("create", body=c.CreateTransaction),
                Route("GET", "/api/transactions/boom", boom, "raises self.raise_"),
                resource.get("get"),
                resource.update("update", body=c.UpdateTransaction),
                resource.delete("delete"),
            ],
            world.services,
            authenticate=fake_authenticate,
            idempotency_store=self._idem_store,
        )

    def settings(self, **changes: Any) -> None:
        """This function's Settings, changed (what the environment would set)."""
        self.world.services.settings = replace(self.world.services.settings, **changes)

    def _idem_store(self) -> Any:
        world = self.world

        class Lookups:
            # A lookup that misses stands for a concurrent request that has not committed yet.
            @staticmethod
            def get_idempotency(scope: str, key_hash: str) -> IdempotencyRecord | None:
                if not self.idem_lookups:
                    return None
                return world.idempotency_store.get_idempotency(scope, key_hash)

        return Lookups()

    def __call__(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: str | bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        environ: dict[str, Any] | None = None,
    ) -> flask.Response:
        if json_body is not None:
            data = json.dumps(json_body)
            content_type = content_type or "application/json"
        with FLASK.test_request_context(
            path,
            method=method,
            data=data,
            headers=headers or {},
            content_type=content_type,
            environ_overrides=environ or {},
        ):
            return self.app(flask.request)


@pytest.fixture
def http(world: World) -> Harness:
    return Harness(world)


class Logs:
    """Every record of the request logger, formatted as the Cloud Logging JSON line."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]


@pytest.fixture
def logs() -> Iterator[Logs]:
    capture = Logs()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("valorize.request")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield capture
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def request_lines(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if "httpRequest" in e]


def problem_of(resp: flask.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status and body["title"]
    return dict(body)


def fields_of(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["errors"]]


def create_body(world: World, **over: Any) -> dict[str, Any]:
    account = world.account_store.list_accounts(USER, 1, None).items
    account_id = account[0].id if account else world.account().id
    return {
        "account_id": account_id,
        "amount": -1234,
        "date": "2024-01-10",
        "description": "Padaria",
        **over,
    }


# --- happy path --------------------------------------------------------------------------------


def test_create_get_list_delete(http: Harness) -> None:
    resp = http("POST", "/api/transactions", json_body=create_body(http.world), headers=AUTH)
    assert resp.status_code == 201 and resp.mimetype == "application/json"
    created = resp.get_json()
    assert created["type"] == "debit" and created["amount"] == -1234
    got = http("GET", f"/api/transactions/{created['id']}", headers=AUTH)
    assert got.status_code == 200 and got.get_json() == created
    listed = http("GET", "/api/transactions?q=PADARIA&max_amount=2000", headers=AUTH)
    assert [t["id"] for t in listed.get_json()["data"]] == [created["id"]]
    gone = http("DELETE", f"/api/transactions/{created['id']}", headers=AUTH)
    assert gone.status_code == 204 and gone.get_data() == b""
    problem_of(http("GET", f"/api/transactions/{created['id']}", headers=AUTH), 404)


def test_healthz_needs_no_token(http: Harness) -> None:
    resp = http("GET", "/api/transactions/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", f"Basic {TOKEN}", "Bearer vz_nope_nope", f"Token {TOKEN}"],
)
def test_401_without_a_valid_bearer(http: Harness, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = http("GET", "/api/transactions", headers=headers)
    problem_of(resp, 401)
    assert resp.headers["WWW-Authenticate"] == "Bearer"


def test_bearer_scheme_is_case_insensitive(http: Harness) -> None:
    resp = http("GET", "/api/transactions", headers={"Authorization": f"bearer {TOKEN}"})
    assert resp.status_code == 200


def test_authentication_comes_before_body_validation(http: Harness) -> None:
    problem_of(
        http("POST", "/api/transactions", data="{nope", content_type="application/json"), 401
    )


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["{not json", "", '{"a": 1,}', "\xff"])
def test_400_on_malformed_json(http: Harness, raw: str) -> None:
    body = problem_of(
        http("POST", "/api/transactions", data=raw, content_type="application/json", headers=AUTH),
        400,
    )
    assert "malformed JSON" in body["detail"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_415_on_a_wrong_content_type(http: Harness, content_type: str | None) -> None:
    problem_of(
        http(
            "POST",
            "/api/transactions",
            data=json.dumps(create_body(http.world)),
            content_type=content_type,
            headers=AUTH,
        ),
        415,
    )


def test_json_with_a_charset_is_fine(http: Harness) -> None:
    resp = http(
        "POST",
        "/api/transactions",
        data=json.dumps(create_body(http.world)),
        content_type="application/json; charset=utf-8",
        headers=AUTH,
    )
    assert resp.status_code == 201


def test_413_over_the_body_limit(http: Harness) -> None:
    http.settings(max_body_bytes=200)
    small = create_body(http.world)
    assert http("POST", "/api/transactions", json_body=small, headers=AUTH).status_code == 201
    big = create_body(http.world, description="x" * 250)
    body = problem_of(http("POST", "/api/transactions", json_body=big, headers=AUTH), 413)
    assert "200 bytes" in body["detail"]
    assert http.world.account_store.list_accounts(USER, 5, None).items[0].transaction_count == 1


def test_413_without_a_content_length(http: Harness) -> None:
    http.settings(max_body_bytes=200)
    big = json.dumps(create_body(http.world, description="x" * 250)).encode()
    resp = http(
        "POST",
        "/api/transactions",
        headers=AUTH,
        content_type="application/json",
        environ={
            "CONTENT_LENGTH": "",
            "wsgi.input": io.BytesIO(big),
            "wsgi.input_terminated": True,
        },
    )
    problem_of(resp, 413)


def test_422_names_nested_fields(http: Harness) -> None:
    cat = http.world.category().id
    bad = create_body(
        http.world,
        splits=[{"category_id": cat, "amount": 1.5}, {"category_id": cat, "amount": "2"}],
    )
    body = problem_of(http("POST", "/api/transactions", json_body=bad, headers=AUTH), 422)
    assert fields_of(body) == ["splits.0.amount", "splits.1.amount"]
    assert "splits.0.amount" in body["detail"]


def test_422_names_unknown_and_missing_fields(http: Harness) -> None:
    bad = create_body(http.world, typo=1)
    del bad["date"]
    body = problem_of(http("POST", "/api/transactions", json_body=bad, headers=AUTH), 422)
    assert set(fields_of(body)) == {"date", "typo"}


def test_422_from_the_service_names_the_field(http: Harness) -> None:
    foreign = http.world.account("someone-else").id
    body = problem_of(
        http(
            "POST",
            "/api/transactions",
            json_body=create_body(http.world, account_id=foreign),
            headers=AUTH,
        ),
        422,
    )
    assert body["errors"] == [{"field": "account_id", "message": "no such account"}]


def test_a_json_array_is_not_a_body(http: Harness) -> None:
    body = problem_of(http("POST", "/api/transactions", json_body=[1], headers=AUTH), 422)
    assert fields_of(body) == ["body"]


# --- query strings -----------------------------------------------------------------------------


def test_422_on_bad_query_uses_the_public_names(http: Harness) -> None:
    body = problem_of(http("GET", "/api/transactions?from=yesterday&limit=0", headers=AUTH), 422)
    assert set(fields_of(body)) == {"from", "limit"}


def test_422_on_a_repeated_query_parameter(http: Harness) -> None:
    body = problem_of(http("GET", "/api/transactions?limit=1&limit=2", headers=AUTH), 422)
    assert fields_of(body) == ["limit"]


def test_422_on_from_after_to(http: Harness) -> None:
    body = problem_of(
        http("GET", "/api/transactions?from=2024-02-01&to=2024-01-01", headers=AUTH), 422
    )
    assert fields_of(body) == ["from"]


# --- routing -----------------------------------------------------------------------------------


def test_404_on_an_unknown_path(http: Harness) -> None:
    for path in ("/api/nothing", "/api/transactions/a/b", "/"):
        body = problem_of(http("GET", path, headers=AUTH), 404)
        assert path in body["detail"]


def test_404_before_authentication(http: Harness) -> None:
    problem_of(http("GET", "/api/nothing"), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/transactions", {"GET", "HEAD", "POST"}),
        ("POST", "/api/transactions/abc", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("POST", "/api/transactions/healthz", {"GET", "HEAD", "PATCH", "DELETE"}),
    ],
)
def test_405_with_an_allow_header(http: Harness, method: str, path: str, allowed: set[str]) -> None:
    resp = http(method, path, headers=AUTH)
    problem_of(resp, 405)
    got = {m.strip() for m in resp.headers["Allow"].split(",")}
    assert allowed <= got


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (NotFound("gone"), 404, None),
        (Conflict("taken"), 409, None),
        (RateLimited("slow down", retry_after=42), 429, "42"),
        (Unavailable("redis down"), 503, "5"),
        (DomainError("bad"), 400, None),
        (gexc.ServiceUnavailable("firestore"), 503, "5"),
        (gexc.DeadlineExceeded("firestore"), 503, "5"),
        # The client's retries ran out of time (Firestore unreachable or stalled).
        (gexc.RetryError("Timeout of 15.0s exceeded", gexc.ServiceUnavailable("down")), 503, "5"),
        # Contention past the write's budget, and an Aborted that escaped the adapters.
        (Contention("retry"), 409, "1"),
        (gexc.Aborted("too much contention on these documents"), 409, "1"),
    ],
)
def test_errors_map_to_statuses(
    http: Harness, error: Exception, status: int, retry_after: str | None
) -> None:
    http.raise_ = error
    resp = http("GET", "/api/transactions/boom", headers=AUTH)
    problem_of(resp, status)
    assert resp.headers.get("Retry-After") == retry_after


def test_500_hides_the_traceback(http: Harness, logs: Logs) -> None:
    http.raise_ = RuntimeError("kaboom: internal detail at /srv/secret.py")
    resp = http("GET", "/api/transactions/boom", headers=AUTH)
    body = problem_of(resp, 500)
    text = resp.get_data(as_text=True)
    for leak in ("Traceback", "kaboom", "secret.py", "RuntimeError", TOKEN):
        assert leak not in text
    assert body["title"] == "Internal Server Error"
    entries = logs.entries()
    errors = [e for e in entries if e["message"] == "unhandled error"]
    assert len(errors) == 1 and errors[0]["severity"] == "ERROR"
    assert "kaboom" in errors[0]["stack_trace"]  # the log keeps what the body hides
    [line] = request_lines(entries)
    assert line["severity"] == "ERROR" and line["httpRequest"]["status"] == 500
    assert TOKEN not in logs.text


def test_backend_outage_during_authentication_is_503(http: Harness) -> None:
    def down(_token: str) -> Any:
        raise gexc.ServiceUnavailable("firestore")

    http.app.authenticate = down
    problem_of(http("GET", "/api/transactions", headers=AUTH), 503)


def test_backend_outage_during_idempotency_lookup_is_503(http: Harness) -> None:
    class Down:
        def get_idempotency(self, scope: str, key_hash: str) -> Any:
            raise gexc.ServiceUnavailable("firestore")

    http.app.idempotency_store = Down
    problem_of(
        http(
            "POST",
            "/api/transactions",
            json_body=create_body(http.world),
            headers={**AUTH, "Idempotency-Key": "k1"},
        ),
        503,
    )


# --- CORS --------------------------------------------------------------------------------------


ALLOWED = "https://app.valorize.example"


@pytest.fixture
def cors(http: Harness) -> Harness:
    http.settings(cors_origins=(ALLOWED, "http://localhost:5173"))
    return http


def preflight(http: Harness, origin: str) -> flask.Response:
    return http(
        "OPTIONS",
        "/api/transactions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


def test_preflight_for_an_allowed_origin(cors: Harness) -> None:
    resp = preflight(cors, ALLOWED)
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    allowed_headers = resp.headers["Access-Control-Allow-Headers"].lower()
    for h in ("authorization", "content-type", "idempotency-key"):
        assert h in allowed_headers
    assert resp.headers["Vary"] == "Origin"
    assert (
        preflight(cors, "http://localhost:5173").headers["Access-Control-Allow-Origin"]
        == "http://localhost:5173"
    )


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "https://app.valorize.example.evil", "null", ""]
)
def test_preflight_for_another_origin_gets_no_cors_headers(cors: Harness, origin: str) -> None:
    resp = preflight(cors, origin)
    assert not any(k.lower().startswith("access-control-") for k, _ in resp.headers.items())


def test_no_cors_origins_configured_means_no_cors(http: Harness) -> None:
    assert "Access-Control-Allow-Origin" not in preflight(http, ALLOWED).headers


def test_actual_requests_get_the_origin_but_not_the_preflight_headers(cors: Harness) -> None:
    resp = cors("GET", "/api/transactions", headers={**AUTH, "Origin": ALLOWED})
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Access-Control-Allow-Methods" not in resp.headers
    denied = cors("GET", "/api/transactions", headers={**AUTH, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in denied.headers
    # Errors carry CORS headers too, so the browser can show them.
    problem = cors("GET", "/api/transactions", headers={"Origin": ALLOWED})
    assert problem.status_code == 401
    assert problem.headers["Access-Control-Allow-Origin"] == ALLOWED


# --- the structured log line -------------------------------------------------------------------


def test_one_json_line_per_request(http: Harness, logs: Logs) -> None:
    http(
        "GET",
        "/api/transactions?q=secret+search",
        headers={
            **AUTH,
            "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
            "User-Agent": "pytest",
            "X-Forwarded-For": "203.0.113.7",
        },
    )
    entries = logs.entries()
    assert len(entries) == 1
    [line] = entries
    assert line["severity"] == "INFO"
    assert line["message"] == "GET /api/transactions 200"
    assert line["logger"] == "valorize.request" and line["function"] == "transactions"
    assert line["logging.googleapis.com/trace"] == (
        "projects/valorize-test/traces/105445aa7843bc8bf206b12000100000"
    )
    assert line["logging.googleapis.com/spanId"] == "1"
    req = line["httpRequest"]
    assert req["status"] == 200 and req["requestMethod"] == "GET"
    assert req["requestUrl"] == "/api/transactions"  # no query string: it may hold search text
    assert req["userAgent"] == "pytest" and req["remoteIp"] == "203.0.113.7"
    assert req["latency"].endswith("s")
    assert line["user_id"] == USER
    assert TOKEN not in logs.text and "secret search" not in logs.text


def test_trace_from_traceparent(http: Harness, logs: Logs) -> None:
    http(
        "GET",
        "/api/transactions/healthz",
        headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    [line] = logs.entries()
    assert line["logging.googleapis.com/trace"] == (
        "projects/valorize-test/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert line["logging.googleapis.com/spanId"] == "00f067aa0ba902b7"
    assert "user_id" not in line


@pytest.mark.parametrize(
    "headers", [{}, {"traceparent": "garbage"}, {"traceparent": "00-short-00f067aa0ba902b7-01"}]
)
def test_no_trace_without_a_valid_header(
    http: Harness, logs: Logs, headers: dict[str, str]
) -> None:
    http("GET", "/api/transactions/healthz", headers=headers)
    [line] = logs.entries()
    assert "logging.googleapis.com/trace" not in line


@pytest.mark.parametrize(
    ("make", "status", "severity"),
    [
        (lambda h: h("GET", "/api/transactions", headers=AUTH), 200, "INFO"),
        (
            lambda h: h("GET", "/api/transactions", headers={"Authorization": f"Bearer {TOKEN}x"}),
            401,
            "WARNING",
        ),
        (
            lambda h: h(
                "POST", "/api/transactions", data="{", content_type="application/json", headers=AUTH
            ),
            400,
            "WARNING",
        ),
        (lambda h: h("GET", "/api/nothing", headers=AUTH), 404, "WARNING"),
        (lambda h: h("PUT", "/api/transactions", headers=AUTH), 405, "WARNING"),
    ],
)
def test_the_log_line_never_carries_the_token(
    http: Harness, logs: Logs, make: Callable[[Harness], flask.Response], status: int, severity: str
) -> None:
    assert make(http).status_code == status
    [line] = request_lines(logs.entries())
    assert line["httpRequest"]["status"] == status and line["severity"] == severity
    assert TOKEN not in logs.text


def test_configure_logging_writes_json_lines_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for h in saved:  # in place: pytest's own handlers live in this list too
        if isinstance(h.formatter, JsonLogFormatter):
            root.removeHandler(h)
    try:
        configure_logging()
        configure_logging()  # idempotent
        ours = [h for h in root.handlers if isinstance(h.formatter, JsonLogFormatter)]
        assert len(ours) == 1
        logging.getLogger("valorize.request").info("hello %s", "world", extra={"entry": {"k": 1}})
        out = capsys.readouterr().out.strip().splitlines()
        assert [json.loads(x) for x in out] == [
            {"severity": "INFO", "message": "hello world", "logger": "valorize.request", "k": 1}
        ]
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (
            "/api/transactions",
            {
                **AUTH,
                "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
                "User-Agent": "pytest ☕",
                "X-Forwarded-For": "203.0.113.7",
            },
        ),
        ("/api/transactions/nope", {}),  # a 401: WARNING, no user
    ],
)
def test_the_request_line_written_straight_to_stdout_is_the_line_logging_writes(
    http: Harness, capsys: pytest.CaptureFixture[str], path: str, headers: dict[str, str]
) -> None:
    """In production (our JSON handler alone on the root logger) the request line skips
    logging's machinery; anything else listening (a capture, a filter) gets it through
    logging. Both must write the same line."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    root.handlers[:] = []
    try:
        configure_logging()
        http("GET", path, headers=headers)
        direct = capsys.readouterr().out.splitlines()
        capture = logging.NullHandler()  # another listener: the line goes through logging
        root.addHandler(capture)
        http("GET", path, headers=headers)
        logged = capsys.readouterr().out.splitlines()
    finally:
        root.handlers[:] = saved
        root.setLevel(level)

    def timeless(line: str) -> dict[str, Any]:
        entry = json.loads(line)
        assert entry["httpRequest"].pop("latency").endswith("s")
        return dict(entry)

    assert len(direct) == len(logged) == 1
    assert timeless(direct[0]) == timeless(logged[0])
    assert list(json.loads(direct[0])) == list(json.loads(logged[0]))  # the same field order


# --- cached reads ------------------------------------------------------------------------------


class RecordingCache:
    """The query cache's contract in a dict, recording the keys it was asked for."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, Scope, str], bytes] = {}
        self.keys: list[str] = []

    def get_or_render(
        self, user_id: str, key: str, render: Callable[[], bytes], scope: Scope = LEDGER
    ) -> tuple[bytes, Outcome]:
        self.keys.append(key)
        if (user_id, scope, key) in self.answers:
            return self.answers[(user_id, scope, key)], "hit"
        body = self.answers[(user_id, scope, key)] = render()
        return body, "miss"

    def bump(self, user_id: str, scope: Scope = LEDGER) -> None:
        self.answers = {k: v for k, v in self.answers.items() if k[:2] != (user_id, scope)}


@pytest.fixture
def cached() -> tuple[Callable[[str], flask.Response], RecordingCache, list[Any]]:
    """A cached list route over a RecordingCache; what its handler was called with."""
    cache = RecordingCache()
    world = make_world(query_cache=cache)
    queries: list[Any] = []

    def handler(call: Call) -> dict[str, Any]:
        queries.append(call.query)
        return {"items": [], "next_cursor": None}

    route = Route("GET", "/api/things", handler, "list", query=c.ListTransactions, cached=True)
    app = FunctionApp("things", [route], world.services, authenticate=fake_authenticate)

    def get(query: str) -> flask.Response:
        with FLASK.test_request_context(f"/api/things{query}", headers=AUTH):
            return app(flask.request)

    return get, cache, queries


def test_a_cached_read_renders_once_and_is_then_served_as_stored(
    cached: tuple[Callable[[str], flask.Response], RecordingCache, list[Any]],
) -> None:
    get, _, queries = cached
    first, again = get("?limit=15"), get("?limit=15")
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("miss", "hit")
    assert first.get_data() == again.get_data() == b'{"items":[],"next_cursor":null}'
    assert again.mimetype == "application/json" and again.status_code == 200
    assert [q.limit for q in queries] == [15]


def test_the_key_of_a_cached_read_is_its_validated_query(
    cached: tuple[Callable[[str], flask.Response], RecordingCache, list[Any]],
) -> None:
    get, cache, queries = cached
    get("?limit=15")
    get("?limit=015")  # another string, the same query: the same answer
    get("?limit=15")
    get("?limit=16")
    assert cache.keys[0] == cache.keys[1] == cache.keys[2] != cache.keys[3]
    assert len(queries) == 2


def test_a_remembered_query_is_parsed_again_when_its_answer_is_rendered(
    cached: tuple[Callable[[str], flask.Response], RecordingCache, list[Any]],
) -> None:
    get, cache, queries = cached
    get("?limit=15")
    cache.bump(USER)  # a write: the next read renders again, from a query it has seen
    assert get("?limit=15").headers["X-Cache"] == "miss"
    assert [q.limit for q in queries] == [15, 15]


def test_a_bad_query_on_a_cached_read_is_refused_every_time(
    cached: tuple[Callable[[str], flask.Response], RecordingCache, list[Any]],
) -> None:
    get, cache, queries = cached
    for _ in range(2):
        body = problem_of(get("?limit=0"), 422)
        assert [e["field"] for e in body["errors"]] == ["limit"]
    assert cache.keys == [] and queries == []


def test_a_cached_read_is_kept_under_its_routes_scope() -> None:
    cache = RecordingCache()
    world = make_world(query_cache=cache)
    route = Route(
        "GET",
        "/api/inbox",
        lambda call: {"unread": 1},
        "inbox",
        cached=True,
        cache_scope="notifications",
    )
    app = FunctionApp("inbox", [route], world.services, authenticate=fake_authenticate)

    def get() -> str:
        with FLASK.test_request_context("/api/inbox", headers=AUTH):
            return str(app(flask.request).headers["X-Cache"])

    assert get() == "miss"
    cache.bump(USER)  # a ledger write leaves it
    assert get() == "hit"
    cache.bump(USER, "notifications")
    assert get() == "miss"


# --- idempotency -------------------------------------------------------------------------------


def post(http: Harness, body: dict[str, Any], key: str | None = "key-1") -> flask.Response:
    headers = {**AUTH, **({"Idempotency-Key": key} if key is not None else {})}
    return http("POST", "/api/transactions", json_body=body, headers=headers)


def test_a_replay_answers_the_first_response_and_writes_nothing(http: Harness) -> None:
    body = create_body(http.world)
    first = post(http, body)
    again = post(http, body)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    account = http.world.account_store.get_account(USER, body["account_id"])
    assert account is not None and (account.balance, account.transaction_count) == (-1234, 1)


def test_a_key_reused_with_another_body_is_422(http: Harness) -> None:
    post(http, create_body(http.world))
    body = problem_of(post(http, create_body(http.world, amount=-1)), 422)
    assert fields_of(body) == ["Idempotency-Key"]


def test_another_key_or_no_key_writes_again(http: Harness) -> None:
    body = create_body(http.world)
    post(http, body, "a")
    post(http, body, "b")
    post(http, body, None)
    post(http, body, None)
    account = http.world.account_store.get_account(USER, body["account_id"])
    assert account is not None and account.transaction_count == 4


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_the_key_length_is_bounded(http: Harness, key: str) -> None:
    body = problem_of(post(http, create_body(http.world), key), 422)
    assert fields_of(body) == ["Idempotency-Key"]


def test_a_concurrent_replay_found_at_write_time(http: Harness) -> None:
    body = create_body(http.world)
    first = post(http, body)
    http.idem_lookups = False  # the pre-check misses; the store's atomic write catches it
    again = post(http, body)
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    mismatch = post(http, create_body(http.world, amount=-1))
    assert fields_of(problem_of(mismatch, 422)) == ["Idempotency-Key"]
    account = http.world.account_store.get_account(USER, body["account_id"])
    assert account is not None and account.transaction_count == 1


def test_a_failed_request_does_not_burn_the_key(http: Harness) -> None:
    bad = create_body(http.world, account_id="nope")
    problem_of(post(http, bad), 422)
    assert post(http, create_body(http.world)).status_code == 201


def test_an_expired_record_is_forgotten(http: Harness) -> None:
    body = create_body(http.world)
    post(http, body)
    space = http.world.memory.spaces[USER]
    [(key_hash, record)] = space.idempotency.items()
    space.idempotency[key_hash] = IdempotencyRecord(
        record.key_hash, record.fingerprint, record.status, record.body, http.world.clock.now()
    )
    again = post(http, body)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["id"] != record.body["id"]


# --- the client address ------------------------------------------------------------------------


def client_ip(forwarded: str, hops: int = 1) -> str:
    with FLASK.test_request_context(
        "/", headers={"X-Forwarded-For": forwarded}, environ_base={"REMOTE_ADDR": "169.254.1.1"}
    ):
        return routes.client_ip(flask.request, hops)


def test_client_ip_without_forwarding() -> None:
    with FLASK.test_request_context("/", environ_base={"REMOTE_ADDR": "198.51.100.4"}):
        assert routes.client_ip(flask.request, 1) == "198.51.100.4"


def test_a_client_cannot_choose_its_own_address() -> None:
    # The load balancer appends "<client ip>, <lb ip>" to whatever the client sent.
    assert client_ip("1.1.1.1, 203.0.113.9, 35.191.0.1") == client_ip(
        "2.2.2.2, 203.0.113.9, 35.191.0.1"
    )
