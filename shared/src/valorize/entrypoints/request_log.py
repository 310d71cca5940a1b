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


class JsonLogFormatter(logging.Formatter):
    """Cloud Logging's structured format: one JSON object per line on stdout."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = getattr(record, "entry", None) or {}
        entry = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            **entry,
        }
        if record.exc_info:
            entry["stack_trace"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging() -> None:
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonLogFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    root.handlers = [handler]
    root.setLevel(logging.INFO)


def _trace(request: flask.Request) -> tuple[str | None, str | None]:
    header = request.headers.get("X-Cloud-Trace-Context")
    if header:
        trace, _, rest = header.partition("/")
        return trace or None, rest.split(";")[0] or None
    parent = request.headers.get("traceparent", "").split("-")
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
            "userAgent": request.headers.get("User-Agent", ""),
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
    log.log(
        level,
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={"entry": entry},
    )
