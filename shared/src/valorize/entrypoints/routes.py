"""Routes declared, not written: what a function serves, as data that the HTTP pipeline
(entrypoints/http.py) runs and the OpenAPI document (entrypoints/openapi.py) describes.

A function's main.py lists its routes: `Resource` gives the CRUD shape of one capability
(list, create, get, update, delete), `task` a Cloud Tasks or Cloud Scheduler target, `Route`
anything else. A handler is a plain function of the `Call`: the validated inputs, who is
calling, and the instance's Services (the composition root, built once when the instance
starts), from which it takes the one service it calls.

What a handler returns is rendered through the route's declared response schema: a domain
object by the schema's `of`, a mapping by validating it, a schema instance as it is."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal, cast

import flask
from pydantic import BaseModel

from valorize.domain import ids
from valorize.domain.errors import NotFound
from valorize.entrypoints.schemas import ListOf
from valorize.service.ports import IdempotencyMark, IdempotencyRecord
from valorize.service.ports.cache import LEDGER, Scope
from valorize.service.requests import Page

if TYPE_CHECKING:
    from valorize.bootstrap import Services

log = logging.getLogger("valorize.request")

# Every path parameter is an id the API issued, by the name it goes by: one of another form is
# answered 404 like an unknown one, before anything is read. A route with a parameter missing
# here is refused when its function is built, so a new route cannot skip the check.
PATH_IDS: dict[str, ids.Form] = {
    "account_id": ids.ENTITY,
    "budget_id": ids.ENTITY,
    "category_id": ids.ENTITY,
    "import_id": ids.IMPORT,
    "job_id": ids.ENTITY,
    "notification_id": ids.NOTIFICATION,
    "recurrence_id": ids.ENTITY,
    "row_id": ids.ROW,
    "rule_id": ids.ENTITY,
    "token_id": ids.ENTITY,
    "transaction_id": ids.TRANSACTION,
}


class Idempotency(Enum):
    """How a POST honours an Idempotency-Key (same key + same request within 24 h: the first
    answer again, nothing written twice)."""

    # The command writes the key's record in its own atomic write (the handler hands
    # `call.idem` to the service).
    ATOMIC = "atomic"
    # The key is claimed before the command runs and the answer stored after, for commands
    # whose write cannot carry the record; a concurrent retry gets a 409.
    CLAIM = "claim"
    # The handler's service keys the work itself (an upload: the key names the file it
    # received); the pipeline checks the key's form and hands it on as `call.idempotency_key`.
    SERVICE = "service"


@dataclass
class Call:
    """What a handler gets: the validated inputs, who is calling, and the Services."""

    request: flask.Request
    services: Services
    route: Route
    params: dict[str, str]
    body: Any = None
    query: Any = None
    user_id: str = ""
    idem: IdempotencyMark | None = None
    idempotency_key: str | None = None
    # Extra headers for the answer (e.g. X-Cache), set by the handler.
    response_headers: dict[str, str] = field(default_factory=dict)
    # A handler may answer with another status than the route's (e.g. 200 for "existed").
    status: int | None = None
    claim: IdempotencyRecord | None = None

    @property
    def client_ip(self) -> str:
        return client_ip(self.request, self.services.settings.trusted_proxy_hops)

    @property
    def task_retries(self) -> int:
        """How many times Cloud Tasks delivered this task before (X-CloudTasks-TaskRetryCount,
        from 0). A value that is not a count is taken as 0 and logged: the header only tells
        the last attempt apart, and refusing the task would drop its work for good (Cloud
        Tasks would redeliver it with the same header)."""
        header = self.request.headers.get("X-CloudTasks-TaskRetryCount", "").strip()
        if header.isascii() and header.isdigit():
            return int(header)
        if header:
            log.warning("X-CloudTasks-TaskRetryCount is not a count: %r; taken as 0", header[:40])
        return 0


Handler = Callable[[Call], Any]


def client_ip(request: flask.Request, trusted_hops: int) -> str:
    """The address the trusted proxies saw; entries the client wrote itself are ignored."""
    # The WSGI environ as it is (the header's value, as request.headers gives it): this
    # runs for every request's log line.
    environ = request.environ
    header = environ.get("HTTP_X_FORWARDED_FOR")
    if header and trusted_hops > 0:
        forwarded = [p for p in (p.strip() for p in header.split(",")) if p]
        if len(forwarded) >= trusted_hops:
            return str(forwarded[-trusted_hops])
    return str(environ.get("REMOTE_ADDR") or "")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    # A multipart/form-data body the handler reads itself (streamed); described, not parsed.
    form: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    # Other success statuses the handler may answer with (it sets call.status), with the same
    # response schema: e.g. 200 for a create that found the thing already there.
    statuses: tuple[int, ...] = ()
    auth: bool = True
    errors: tuple[int, ...] = ()
    idempotency: Idempotency | None = None
    # Cloud Tasks / Cloud Scheduler targets: the invoker's credentials, never a user token.
    internal: bool = False
    # A task whose subject may be gone answers `Gone` instead of `response` (see `task`).
    gone: bool = False
    # A user's read answered through their query cache (adapters/cache.py), keyed by the
    # path and the validated query, under the user's version of `cache_scope`: its data must
    # be covered by that scope's invalidation (bootstrap: `_subscribe_cache_invalidation` for
    # the ledger's events, `_bumping` for the stores of the other scopes), so every write to
    # it bumps that version.
    cached: bool = False
    cache_scope: Scope = LEDGER

    def render(self, result: Any) -> Any:
        """The JSON of a handler's result, through the declared response schema."""
        if isinstance(result, BaseModel):
            return dump(result)
        schema: Any = self.response
        if schema is None:
            return result
        if isinstance(result, Mapping):
            return dump(schema.model_validate(result))
        return dump(schema.of(result))


def dump(model: BaseModel) -> Any:
    """A response's JSON. Fields a schema leaves unset (optional counts of a task's answer, a
    bound a rule omitted) stay out rather than appear as null."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)


def named(name: str, handler: Handler) -> Handler:
    """The handler under `name`: it is the route's operationId in the OpenAPI document."""
    handler.__name__ = handler.__qualname__ = name
    return handler


@dataclass(frozen=True)
class Resource:
    """The CRUD shape of one capability: `path` lists and creates, `path/<id>` gets, updates
    and deletes, each calling the method of the same name on the capability's service
    (`service(services)`): list(user_id, limit, cursor), create(user_id, body[, idem]),
    get(user_id, id), update(user_id, id, body), delete(user_id, id, **query)."""

    path: str
    id: str
    service: Callable[[Services], Any]
    out: type[BaseModel]

    @property
    def _one(self) -> str:
        return self.id.removesuffix("_id")

    @property
    def _many(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def _item(self) -> str:
        return f"{self.path}/<{self.id}>"

    def list(
        self,
        summary: str,
        *,
        query: type[BaseModel] | None = Page,
        response: type[BaseModel] | None = None,
        **route: Any,
    ) -> Route:
        """A page (`query`: limit and cursor) or, without a query, the whole list."""

        def handler(call: Call) -> Any:
            service = self.service(call.services)
            if call.query is None:
                return service.list(call.user_id)
            return service.list(call.user_id, call.query.limit, call.query.cursor)

        return Route(
            "GET",
            self.path,
            named(f"list_{self._many}", handler),
            summary,
            query=query,
            response=response or _list_of(self.out),
            **route,
        )

    def create(self, summary: str, *, body: type[BaseModel], **route: Any) -> Route:
        atomic = route.setdefault("idempotency", Idempotency.ATOMIC) is Idempotency.ATOMIC

        def handler(call: Call) -> Any:
            service = self.service(call.services)
            if atomic:
                return service.create(call.user_id, call.body, call.idem)
            return service.create(call.user_id, call.body)

        return Route(
            "POST",
            self.path,
            named(f"create_{self._one}", handler),
            summary,
            body=body,
            response=self.out,
            status=201,
            **route,
        )

    def get(self, summary: str, **route: Any) -> Route:
        def handler(call: Call) -> Any:
            return self.service(call.services).get(call.user_id, call.params[self.id])

        route.setdefault("errors", (404,))
        return Route(
            "GET",
            self._item(),
            named(f"get_{self._one}", handler),
            summary,
            response=self.out,
            **route,
        )

    def update(
        self, summary: str, *, body: type[BaseModel], verb: str = "update", **route: Any
    ) -> Route:
        def handler(call: Call) -> Any:
            change = getattr(self.service(call.services), verb)
            return change(call.user_id, call.params[self.id], call.body)

        route.setdefault("errors", (404,))
        return Route(
            "PATCH",
            self._item(),
            named(f"{verb}_{self._one}", handler),
            summary,
            body=body,
            response=self.out,
            **route,
        )

    def delete(self, summary: str, **route: Any) -> Route:
        def handler(call: Call) -> None:
            # A delete's query (e.g. ?confirm=true) goes to the service by its field names.
            options = call.query.model_dump() if call.query is not None else {}
            self.service(call.services).delete(call.user_id, call.params[self.id], **options)

        route.setdefault("errors", (404,))
        return Route(
            "DELETE", self._item(), named(f"delete_{self._one}", handler), summary, **route
        )


def _list_of(item: type[BaseModel]) -> type[BaseModel]:
    """ListOf[item]: a page of the item's schema."""
    listed: type[BaseModel] = cast(Any, ListOf)[item]
    return listed


def task(
    path: str,
    handler: Handler,
    summary: str,
    *,
    body: type[BaseModel],
    response: type[BaseModel],
    status: int = 200,
    gone: bool = False,
    errors: tuple[int, ...] = (401, 503),
) -> Route:
    """An internal target (Cloud Tasks, Cloud Scheduler): the invoker's OIDC token, never a
    user's; a body it cannot read is logged as dropped work. `gone`: the task's subject may
    have been deleted since it was enqueued (NotFound, or a handler answering None), which
    answers 200 {"status": "gone"} so Cloud Tasks stops retrying it. A 503 asks Cloud Tasks
    to retry: a backend was down, or a live event could not be pushed (service/task_pushes.py)."""
    if gone:
        handler = named(handler.__name__, _gone_if_missing(handler))
    return Route(
        "POST",
        path,
        handler,
        summary,
        body=body,
        response=response,
        status=status,
        auth=False,
        internal=True,
        errors=errors,
        gone=gone,
    )


def _gone_if_missing(handler: Handler) -> Handler:
    def run(call: Call) -> Any:
        try:
            result = handler(call)
        except NotFound:
            return Gone(status="gone")
        return Gone(status="gone") if result is None else result

    return run


class Gone(BaseModel):
    """A task's answer when its subject no longer exists."""

    status: Literal["gone"]
