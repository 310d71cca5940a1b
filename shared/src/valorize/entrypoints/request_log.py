"""Logging of the HTTP functions and the realtime server: Cloud Logging's structured format (one
JSON object per line on stdout), and the one line each request leaves, linked to its trace."""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

import flask

from valorize.entrypoints.routes import client_ip

log = logging.getLogger("valorize.request")
# Marks a request to an internal route (the WSGI environ is the request's own).
INTERNAL_ROUTE = "valorize.internal_route"


# Built once: json.dumps builds an encoder per call when given options.
_LINE = json.JSONEncoder(default=str, ensure_ascii=False)


def json_line(severity: str, message: str, logger: str, entry: dict[str, Any]) -> str:
    """One log entry in Cloud Logging's structured format (JSON, one line)."""
    return _LINE.encode({"severity": severity, "message": message, "logger": logger, **entry})


class JsonLogFormatter(logging.Formatter):
    """Cloud Logging's structured format: one JSON object per line on stdout."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = dict(getattr(record, "entry", None) or {})
        if record.exc_info:
            entry["stack_trace"] = "".join(traceback.format_exception(*record.exc_info))
        return json_line(record.levelname, record.getMessage(), record.name, entry)


class _Stdout:
    """The handler configure_logging installed: while it is the only one anything would
    reach, the request line is written straight to its stream."""

    handler: logging.StreamHandler[Any] | None = None


def configure_logging() -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonLogFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    _Stdout.handler = handler


def _direct_stream(level: int) -> Any:
    """Our handler's stream when a record of `level` from `log` would reach that handler
    alone, unfiltered (production); None when anything else listens (tests' captures, a
    filter, another handler), and the line then goes through logging as any other."""
    handler = _Stdout.handler
    handlers = logging.root.handlers
    if (
        handler is None
        or len(handlers) != 1
        or handlers[0] is not handler
        or log.handlers
        or log.filters
        or logging.root.filters
        or handler.filters
        or not log.propagate
        or level < handler.level
        or not log.isEnabledFor(level)
    ):
        return None
    return handler.stream


def _trace(request: flask.Request) -> tuple[str | None, str | None]:
    # From the WSGI environ as it is (what request.headers would give): on every request.
    environ = request.environ
    header = environ.get("HTTP_X_CLOUD_TRACE_CONTEXT")
    if header:
        trace, _, rest = header.partition("/")
        return trace or None, rest.split(";")[0] or None
    parent = environ.get("HTTP_TRACEPARENT", "").split("-")
    if len(parent) == 4 and len(parent[1]) == 32:
        return parent[1], parent[2]
    return None, None


def trace_fields(request: flask.Request, project: str) -> dict[str, Any]:
    """The fields that put a log line under the request's trace in Cloud Logging."""
    trace, span = _trace(request)
    fields: dict[str, Any] = {}
    if trace:
        fields["logging.googleapis.com/trace"] = f"projects/{project}/traces/{trace}"
    if span:
        fields["logging.googleapis.com/spanId"] = span
    return fields


def log_request(
    function: str,
    request: flask.Request,
    response: flask.Response,
    started: float,
    user_id: str,
    *,
    project: str,
    trusted_proxy_hops: int,
) -> None:
    """The request's one line: ERROR for a 5xx (and for an internal call we could not read),
    WARNING for a 4xx, INFO otherwise."""
    latency = time.perf_counter() - started
    entry = {
        **trace_fields(request, project),
        "function": function,
        # The path only: query strings may carry search text, and headers carry tokens.
        "httpRequest": {
            "requestMethod": request.method,
            "requestUrl": request.path,
            "status": response.status_code,
            "latency": f"{latency:.6f}s",
            "remoteIp": client_ip(request, trusted_proxy_hops),
            "userAgent": request.environ.get("HTTP_USER_AGENT", ""),
            "requestSize": str(request.content_length or 0),
            "responseSize": str(response.calculate_content_length() or 0),
        },
    }
    if user_id:
        entry["user_id"] = user_id
    level = (
        logging.ERROR
        if response.status_code >= 500
        else (logging.WARNING if response.status_code >= 400 else logging.INFO)
    )
    if request.environ.get(INTERNAL_ROUTE) and response.status_code in (400, 422):
        # A task or scheduler call we cannot read is work that will never be done: an
        # error to look at, not a client's mistake.
        level = logging.ERROR
        entry["dropped"] = "malformed internal payload: " + str(
            json.loads(response.get_data()).get("detail")
        )
    stream = _direct_stream(level)
    if stream is None:
        log.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={"entry": entry},
        )
        return
    # The line logging would write, without its record, formatter and handler lock (a
    # third of a cached read's time under load); one write, as the handler makes it.
    message = f"{request.method} {request.path} {response.status_code}"
    stream.write(json_line(logging.getLevelName(level), message, log.name, entry) + "\n")
    stream.flush()
