"""A thin HTTP layer for Cloud Run functions: a table of routes (entrypoints/routes.py), each
parsed, authenticated, validated, made idempotent and rendered the same way, with
problem+json errors and one structured log line per request (entrypoints/request_log.py). A
function's main.py lists its routes and hands them, with the instance's Services, to
`FunctionApp`."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import flask
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import Map, MapAdapter, Rule

from valorize.domain.errors import Contention, DomainError, FieldError, RateLimited
from valorize.entrypoints.internal import check_internal
from valorize.entrypoints.openapi import build_document
from valorize.entrypoints.request_log import (
    INTERNAL_ROUTE,
    configure_logging,
    log_request,
    trace_fields,
)
from valorize.entrypoints.routes import PATH_IDS, Call, Idempotency, Route
from valorize.entrypoints.schemas import FieldProblem, Problem
from valorize.service.ports import (
    IdempotencyMark,
    IdempotencyRecord,
    IdempotencyStore,
    IdempotentReplay,
)

if TYPE_CHECKING:
    from valorize.bootstrap import Services
    from valorize.config import Settings
    from valorize.service.auth import Principal

log = logging.getLogger("valorize.request")
IDEMPOTENCY_TTL = timedelta(hours=24)
# A claim whose request died without answering frees itself after this long.
CLAIM_TTL = timedelta(seconds=60)
PROBLEM = "application/problem+json"


def _backend_down(error: Exception) -> bool:
    """Firestore/Google API outages are 503s with Retry-After, wherever they happen.

    google.api_core is looked up, not imported: if the error came from it, it is loaded, and
    importing it eagerly would pull gRPC into every cold start."""
    api = sys.modules.get("google.api_core.exceptions")
    # RetryError: the client's retries ran out of time (adapters/firestore/deadlines.py).
    outage = (api.ServiceUnavailable, api.DeadlineExceeded, api.RetryError) if api else ()
    return isinstance(error, outage)


def _contended(error: Exception) -> bool:
    """An `Aborted` that escaped the adapters' retries (adapters/firestore/contention.py) is
    still contention: a 409 the client may retry, not a 500."""
    api = sys.modules.get("google.api_core.exceptions")
    return api is not None and isinstance(error, api.Aborted)


class Reply(Exception):
    """Raised internally to short-circuit with a ready response."""

    def __init__(self, response: flask.Response) -> None:
        self.response = response


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
    extensions: dict[str, object] | None = None,
) -> flask.Response:
    body = Problem(
        title=title,
        status=status,
        detail=detail,
        errors=[FieldProblem(field=e.field, message=e.message) for e in errors],
    ).model_dump(mode="json")
    # RFC 9457 extension members sit beside the standard ones (e.g. "remaining").
    body.update(extensions or {})
    resp = flask.Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


# Built once: json.dumps builds an encoder per call when given options.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SORTED = json.JSONEncoder(sort_keys=True)
# Cache keys of the queries seen, per instance (see FunctionApp._cache_key): cleared when full.
QUERY_KEYS = 1024


def _encode(payload: Any) -> bytes:
    return _COMPACT.encode(payload).encode()


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> flask.Response:
    if status == 204 or payload is None:
        return flask.Response(status=204 if payload is None else status, headers=headers)
    body = payload if isinstance(payload, bytes) else _encode(payload)
    # content_type, not mimetype: the header as it is, without working out a charset.
    return flask.Response(body, status=status, content_type="application/json", headers=headers)


def _field_name(loc: tuple[Any, ...], aliases: dict[str, str]) -> str:
    parts = [aliases.get(str(p), str(p)) for p in loc]
    return ".".join(parts) or "body"


def _validation_problem(err: ValidationError, model: type[BaseModel], where: str) -> flask.Response:
    issues = err.errors(include_url=False, include_context=False, include_input=False)
    if any(i["type"] == "json_invalid" for i in issues):
        return problem(400, "Bad Request", f"malformed JSON: {issues[0]['msg']}")
    aliases = {name: f.alias for name, f in model.model_fields.items() if f.alias}
    fields = [FieldError(_field_name(tuple(i["loc"]), aliases), i["msg"]) for i in issues]
    names = ", ".join(f.field for f in fields)
    return problem(422, "Unprocessable Content", f"invalid {where}: {names}", fields)


@dataclass
class FunctionApp:
    """One Cloud Run function: `name` is its resource (`/api/<name>/...`), `services` the
    instance's composition root (bootstrap.build), handed to each handler in its Call.
    `authenticate` and `idempotency_store` default to the services' own."""

    name: str
    routes: list[Route]
    services: Services
    authenticate: Callable[[str], Principal] | None = None
    idempotency_store: Callable[[], IdempotencyStore] | None = None
    # The member of `services` that serves the routes, built while the instance warms (its
    # adapters imported, the bus wired: work the first request would do after readiness).
    # By default the member named like the function, when there is one.
    service: str | None = None
    _map: Map = field(init=False)
    # Bound once: matching only reads it, from any thread.
    _matcher: MapAdapter = field(init=False)
    # (method, path) -> route, for the routes without ids: a dict lookup instead of the
    # matcher's state machine (which would pick the same route: a static rule wins).
    _static: dict[tuple[str, str], int] = field(init=False)
    # Set once the clients the settings name are warm (or failed to be: see Services.warm).
    warmed: threading.Event = field(init=False, default_factory=threading.Event)
    # The process that started warming: a forked worker starts its own.
    _warming_pid: int | None = field(init=False, default=None)
    _warming_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    # (route, its ids, the raw query string, the day) -> the cached read's key (_cache_key).
    _query_keys: dict[tuple[str, tuple[tuple[str, str], ...], bytes, str], str] = field(
        init=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        members = type(self.services)
        if self.service is None:
            self.service = self.name if _is_service(members, self.name) else None
        elif not _is_service(members, self.service):
            raise ValueError(f"no service {self.service!r} to warm for {self.name}")
        base = f"/api/{self.name}"
        self.routes = [
            Route(
                "GET",
                f"{base}/healthz",
                self.healthz,
                "Readiness: 503 while the instance warms its clients, then 200",
                auth=False,
                errors=(503,),
            ),
            Route(
                "GET",
                f"{base}/openapi.json",
                self._openapi,
                "This function's OpenAPI 3.1 document",
                auth=False,
            ),
            *self.routes,
        ]
        # merge_slashes off: "//" (an encoded "/" in an id) is no route, not a redirect.
        self._map = Map(
            [
                Rule(r.path, methods=[r.method], endpoint=i, strict_slashes=False)
                for i, r in enumerate(self.routes)
            ],
            merge_slashes=False,
        )
        self._matcher = self._map.bind("localhost")
        self._static = {
            (r.method, r.path): i for i, r in enumerate(self.routes) if "<" not in r.path
        }
        for rule in self._map.iter_rules():
            unknown = set(rule.arguments) - set(PATH_IDS)
            if unknown:
                raise ValueError(f"{rule.rule}: no id form for {sorted(unknown)} (routes.PATH_IDS)")
        for route in self.routes:
            if route.idempotency is not None and (route.method != "POST" or not route.auth):
                raise ValueError(f"{route.path}: Idempotency-Key is for a user's POST")
        configure_logging()
        if flask.has_app_context():
            # functions-framework runs main.py inside the app it serves from, whose one route
            # (`/<path:path>`) matches no path with a newline: its HTML 404 would answer for
            # us. Such a path goes through this pipeline like any other (a problem+json 404).
            flask.current_app.register_error_handler(404, lambda _e: self(flask.request))
        # functions-framework imports main.py in gunicorn's master and serves from the workers
        # it forks: sockets and gRPC channels do not survive a fork, so each worker warms its
        # own clients as it starts. A process that serves without forking (the Flask debug
        # server) starts on its first request; one that never serves (tests, tools) never.
        method = weakref.WeakMethod(self._start_warming)
        os.register_at_fork(after_in_child=lambda: (start := method()) and start())

    @property
    def settings(self) -> Settings:
        return self.services.settings

    # --- instance start -----------------------------------------------------------------------

    def _start_warming(self) -> None:
        """The clients are built on a thread while the server starts listening (Cloud Run's
        startup CPU boost pays for it); /healthz answers 503 until they are."""
        # After a fork, the parent's lock and event may be in any state: this process's own.
        if self._warming_pid is not None and self._warming_pid != os.getpid():
            self._warming_lock = threading.Lock()
        with self._warming_lock:
            if self._warming_pid == os.getpid():
                return
            self._warming_pid = os.getpid()
            self.warmed = threading.Event()
            clients = self.settings.warm_clients
            if not clients:
                self.warmed.set()
                return
            threading.Thread(
                target=self._warm, args=(clients,), name=f"warm-{self.name}", daemon=True
            ).start()

    def _warm(self, clients: Sequence[str]) -> None:
        started = time.perf_counter()
        took: dict[str, float | None] = dict.fromkeys(clients)
        try:
            took = self.services.warm(clients)
            if self.service is not None:
                getattr(self.services, self.service)
        except Exception:
            log.exception("warm-up failed; clients and services are built on first use")
        finally:
            self.warmed.set()
        log.info(
            "warm in %.3f s",
            time.perf_counter() - started,
            extra={"entry": {"function": self.name, "warm_seconds": took}},
        )

    def healthz(self, _call: Call) -> dict[str, str]:
        if not self.warmed.is_set():
            raise Reply(
                problem(
                    503,
                    "Service Unavailable",
                    "the instance is still starting",
                    headers={"Retry-After": "1"},
                )
            )
        return {"status": "ok"}

    # --- request pipeline ---------------------------------------------------------------------

    def __call__(self, request: flask.Request) -> flask.Response:
        started = time.perf_counter()
        # A forked worker has started already (register_at_fork): only a process that serves
        # without forking starts here, on its first request.
        if self._warming_pid is None:
            self._start_warming()
        user_id = ""
        try:
            response, user_id = self._dispatch(request)
        except Reply as r:
            response = r.response
        except Exception as e:  # the last line of defence: never a stack trace out
            fields = {"entry": trace_fields(request, self.settings.project)}
            if _backend_down(e):
                log.warning("backend unavailable: %s", e, extra=fields)
                response = problem(
                    503,
                    "Service Unavailable",
                    "a backend is unavailable; retry",
                    headers={"Retry-After": "5"},
                )
            elif _contended(e):
                log.warning("contention: %s", e, extra=fields)
                response = self._domain_problem(Contention("retry: a concurrent write won"))
            else:
                log.exception("unhandled error", extra=fields)
                response = problem(
                    500, "Internal Server Error", "an unexpected error occurred; it has been logged"
                )
        self._cors(request, response)
        log_request(
            self.name,
            request,
            response,
            started,
            user_id,
            project=self.settings.project,
            trusted_proxy_hops=self.settings.trusted_proxy_hops,
        )
        return response

    def _dispatch(self, request: flask.Request) -> tuple[flask.Response, str]:
        if request.method == "OPTIONS":
            return flask.Response(status=204), ""
        static = self._static.get((request.method, request.path))
        try:
            index, params = (
                (static, {})
                if static is not None
                else self._matcher.match(request.path, method=request.method)
            )
        except RouteNotFound:
            raise Reply(problem(404, "Not Found", f"no route for {request.path}")) from None
        except MethodNotAllowed as e:
            allowed = ", ".join(sorted(e.valid_methods or []))
            raise Reply(
                problem(405, "Method Not Allowed", f"use {allowed}", headers={"Allow": allowed})
            ) from None
        route = self.routes[index]
        call = Call(request, self.services, route, dict(params))
        if route.internal:
            request.environ[INTERNAL_ROUTE] = True
            try:
                check_internal(request, self.settings, lambda: self.services.oidc_transport)
            except DomainError as e:
                raise Reply(problem(401, "Unauthorized", e.detail)) from None
        elif route.auth:
            # What other instances announced (token revocations, cache bumps) is read once,
            # by the token check, and trusted for the rest of the request (adapters/feeds.py).
            with self.services.feeds.per_request():
                call.user_id = self._authenticate(request)
                if route.method != "GET":
                    self._limit_rate(request, call.user_id)
                return self._run(request, route, call)
        return self._run(request, route, call)

    def _run(self, request: flask.Request, route: Route, call: Call) -> tuple[flask.Response, str]:
        """The call, authenticated: validated, made idempotent, answered (cached) and rendered."""
        for name, value in call.params.items():
            if not PATH_IDS[name].matches(value):
                raise Reply(problem(404, "Not Found", f"no such {name.removesuffix('_id')}"))
        if route.cached:
            # A read served from the query cache: its key stands for the validated query.
            return self._cached(request, route, call), call.user_id
        if route.query is not None:
            call.query = self._parse_query(request, route.query)
        raw = b""
        if route.body is not None:
            raw = self._read_body(request)
            try:
                call.body = route.body.model_validate_json(raw)
            except ValidationError as e:
                raise Reply(_validation_problem(e, route.body, "request body")) from None
        if route.idempotency is not None:
            replay = self._idempotency(request, route, call, raw)
            if replay is not None:
                return replay, call.user_id
        try:
            result = self._handle(route, call, raw) if route.internal else route.handler(call)
        except IdempotentReplay as r:
            return self._replayed(r.record, call), call.user_id
        except BaseException as e:
            if call.claim is not None:
                # Nothing was done: free the key so a corrected retry can run.
                self._store().drop_idempotency(call.user_id, call.claim.key_hash)
            if not isinstance(e, DomainError):
                raise
            return self._domain_problem(e), call.user_id
        if result is None:
            return flask.Response(status=204), call.user_id
        payload = result if isinstance(result, bytes) else route.render(result)
        status = call.status or route.status
        if call.claim is not None:
            done = IdempotencyRecord(
                call.claim.key_hash,
                call.claim.fingerprint,
                status,
                payload,
                datetime.now(UTC) + IDEMPOTENCY_TTL,
            )
            self._store().put_idempotency(call.user_id, done)
        return _json(status, payload, call.response_headers or None), call.user_id

    def _handle(self, route: Route, call: Call, raw: bytes) -> Any:
        """A task's handler, its live events pushed keyed after it (service/task_pushes.py): a
        push that fails fails the task (Unavailable: 503, Cloud Tasks retries), and its
        redelivery pushes them. A task without a user has no tenant to keep them under:
        best effort."""
        user_id = getattr(call.body, "user_id", None)
        if not isinstance(user_id, str) or not user_id:
            return route.handler(call)
        headers = call.request.headers
        # The same on every delivery of one task, different between two tasks (the name
        # Cloud Tasks gives it, where it gives one; the route and the body besides).
        task = _SORTED.encode(
            [
                headers.get("X-CloudTasks-QueueName", ""),
                headers.get("X-CloudTasks-TaskName", ""),
                route.path,
                hashlib.blake2b(raw, digest_size=16).hexdigest(),
            ]
        )
        # Only a delivery Cloud Tasks numbers 0 is known to be the first (the emulator numbers
        # them too); any other may follow one that left pushes.
        count = headers.get("X-CloudTasks-TaskRetryCount", "").strip()
        first = count.isascii() and count.isdigit() and int(count) == 0
        with self.services.task_pushes.delivery(task, user_id, redelivered=not first):
            return route.handler(call)

    def _cached(self, request: flask.Request, route: Route, call: Call) -> flask.Response:
        """A cached read: the stored bytes of its answer, or the handler's answer rendered
        once and stored."""
        key = self._cache_key(request, route, call)

        def render() -> bytes:
            if route.query is not None and call.query is None:
                call.query = self._parse_query(request, route.query)
            return _encode(route.render(route.handler(call)))

        try:
            body, outcome = self.services.query_cache.get_or_render(
                call.user_id, key, render, route.cache_scope
            )
        except DomainError as e:
            return self._domain_problem(e)
        call.response_headers["X-Cache"] = outcome
        return _json(call.status or route.status, body, call.response_headers)

    def _cache_key(self, request: flask.Request, route: Route, call: Call) -> str:
        """The route, its ids, the validated query and the day, so that a default meaning
        "this month" or "latest" never outlives its day.

        A query string validated before has the same key again (validation depends on the
        string alone): it is remembered, and the query parsed only if the handler runs. One
        never seen is validated here, so that a bad one is refused before anything else."""
        today = self.services.clock.now().date().isoformat()
        seen = (route.path, tuple(call.params.items()), request.query_string, today)
        key = self._query_keys.get(seen)
        if key is not None:
            return key
        if route.query is not None:
            call.query = self._parse_query(request, route.query)
        query = call.query.model_dump(mode="json", by_alias=True) if call.query else None
        text = _SORTED.encode([route.path, call.params, query, today])
        key = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        if len(self._query_keys) >= QUERY_KEYS:
            self._query_keys.clear()
        self._query_keys[seen] = key
        return key

    @staticmethod
    def _domain_problem(e: DomainError) -> flask.Response:
        retry_after = e.retry_after if isinstance(e, (RateLimited, Contention)) else None
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if e.status == 503:
            headers = {"Retry-After": "5"}
        return problem(e.status, e.title, e.detail, e.errors, headers, e.extensions)

    def _authenticate(self, request: flask.Request) -> str:
        # From the WSGI environ as it is (what request.headers would give), on every request.
        header = request.environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Reply(
                problem(
                    401,
                    "Unauthorized",
                    "send Authorization: Bearer <token>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            )
        authenticate = self.authenticate or self.services.auth.authenticate
        try:
            principal = authenticate(token)
        except DomainError as e:
            raise Reply(
                problem(401, "Unauthorized", e.detail, headers={"WWW-Authenticate": "Bearer"})
            ) from None
        return str(principal.user_id)

    def _limit_rate(self, request: flask.Request, user_id: str) -> None:
        """Per-user write and upload rate limits (service/rate_limits.py): 429 with
        Retry-After, before the body is read."""
        try:
            upload = request.mimetype == "multipart/form-data"
            self.services.rate_limits.check(user_id, upload=upload)
        except RateLimited as e:
            raise Reply(self._domain_problem(e)) from None

    @staticmethod
    def _parse_query(request: flask.Request, model: type[BaseModel]) -> BaseModel:
        args: dict[str, Any] = {}
        for key, values in request.args.lists():
            if len(values) > 1:
                raise Reply(
                    problem(
                        422,
                        "Unprocessable Content",
                        f"{key} given more than once",
                        [FieldError(key, "give it once")],
                    )
                )
            args[key] = values[0]
        try:
            return model.model_validate(args)
        except ValidationError as e:
            raise Reply(_validation_problem(e, model, "query")) from None

    def _read_body(self, request: flask.Request) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Reply(problem(413, "Content Too Large", f"the body exceeds {limit} bytes"))
        if request.mimetype != "application/json":
            raise Reply(problem(415, "Unsupported Media Type", "send the body as application/json"))
        raw = request.stream.read(limit + 1)
        if len(raw) > limit:
            raise Reply(problem(413, "Content Too Large", f"the body exceeds {limit} bytes"))
        return raw

    def _store(self) -> IdempotencyStore:
        if self.idempotency_store is not None:
            return self.idempotency_store()
        return self.services.idempotency_store

    def _idempotency(
        self, request: flask.Request, route: Route, call: Call, raw: bytes
    ) -> flask.Response | None:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not 1 <= len(key) <= 255:
            raise Reply(
                problem(
                    422,
                    "Unprocessable Content",
                    "Idempotency-Key: 1 to 255 chars",
                    [FieldError("Idempotency-Key", "must be 1 to 255 characters")],
                )
            )
        call.idempotency_key = key
        if route.idempotency is Idempotency.SERVICE:
            return None
        key_hash = hashlib.sha256(f"{route.path}\n{key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(
            request.method.encode() + b" " + request.full_path.encode() + b"\n" + raw
        ).hexdigest()
        prior = self._store().get_idempotency(call.user_id, key_hash)
        if prior is None and route.idempotency is Idempotency.CLAIM:
            call.claim = IdempotencyRecord(
                key_hash, fingerprint, 0, None, datetime.now(UTC) + CLAIM_TTL
            )
            prior = self._store().claim_idempotency(call.user_id, call.claim)
            if prior is not None:
                call.claim = None
        if prior is not None:
            if prior.fingerprint != fingerprint:
                return self._mismatch()
            if prior.status == 0:
                return problem(
                    409,
                    "Conflict",
                    "a request with this Idempotency-Key is still in progress; retry shortly",
                    headers={"Retry-After": "1"},
                )
            return self._replayed(prior, call)
        if call.claim is not None:
            return None
        call.idem = IdempotencyMark(
            key_hash=key_hash,
            fingerprint=fingerprint,
            expires_at=datetime.now(UTC) + IDEMPOTENCY_TTL,
            render=lambda result: (route.status, route.render(result)),
        )
        return None

    @staticmethod
    def _mismatch() -> flask.Response:
        return problem(
            422,
            "Unprocessable Content",
            "this Idempotency-Key was used with a different request",
            [FieldError("Idempotency-Key", "reused with a different request")],
        )

    def _replayed(self, record: IdempotencyRecord, call: Call) -> flask.Response:
        if call.idem is not None and record.fingerprint != call.idem.fingerprint:
            return self._mismatch()
        return _json(record.status, record.body, {"Idempotent-Replayed": "true"})

    # --- cross-cutting ------------------------------------------------------------------------

    def _cors(self, request: flask.Request, response: flask.Response) -> None:
        origins = self.settings.cors_origins
        if origins:
            # Caches must not hand one origin's answer to another.
            response.headers.add("Vary", "Origin")
        origin = request.environ.get("HTTP_ORIGIN")
        if not origin or origin not in origins:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PATCH, DELETE, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = (
                "Authorization, Content-Type, Idempotency-Key"
            )
            response.headers["Access-Control-Max-Age"] = "3600"

    # --- OpenAPI ------------------------------------------------------------------------------

    def _openapi(self, _call: Call) -> dict[str, Any]:
        return self.openapi()

    def openapi(self) -> dict[str, Any]:
        return build_document(self.name, self.routes)


def _is_service(members: type, name: str) -> bool:
    """Whether `name` is a member the composition root builds once (a cached_property)."""
    return isinstance(getattr(members, name, None), functools.cached_property)
