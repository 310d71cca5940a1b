"""Cloud Tasks: enqueue an HTTP task that POSTs JSON to one of our functions.

Production tasks carry a Google-signed OIDC token of the tasks-invoker service account
(verified by the target, see entrypoints/internal.py); locally the emulator cannot mint
one, so tasks carry the stack's shared secret instead. Task names make enqueueing
idempotent where Cloud Tasks deduplicates (the emulator does not; handlers are idempotent
anyway, because Cloud Tasks delivers at least once), which is also what makes retrying a
create_task that failed in transit safe.

A function may enqueue only on the queues its registry entry declares (functions/registry.py
writes them into VALORIZE_TASK_QUEUES, locally and in production): anything else is refused
here, before Cloud Tasks would refuse it in production for want of the IAM grant."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from valorize.config import INTERNAL_HEADER, Settings

if TYPE_CHECKING:
    from google.cloud import tasks_v2

log = logging.getLogger(__name__)


class UndeclaredQueue(RuntimeError):
    """Code enqueued on a queue its function does not declare in functions/registry.py."""


def task_id(*parts: str) -> str:
    """A Cloud Tasks task id from meaningful parts (allowed: letters, digits, -, _)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", "-".join(parts))[:500]


class CloudTasksQueue:
    def __init__(self, settings: Settings, client: Callable[[], tasks_v2.CloudTasksClient]) -> None:
        """`client`: the Cloud Tasks client, built (by bootstrap) on the first enqueue."""
        self.settings = settings
        self._client = client

    @cached_property
    def client(self) -> tasks_v2.CloudTasksClient:
        return self._client()

    def queue_path(self, queue: str) -> str:
        allowed = self.settings.allowed_queues
        if allowed is None or queue not in allowed:
            raise UndeclaredQueue(
                f"this function may not enqueue on {queue!r}: it declares "
                f"{', '.join(allowed) if allowed else 'no queue'} (functions/registry.py)"
            )
        full = self.settings.task_queue_paths.get(queue)
        if full:
            return full
        # Locally the emulator holds one queue per registry queue, under the same names.
        location = self.settings.tasks_location
        return f"projects/{self.settings.project}/locations/{location}/queues/{queue}"

    def enqueue(
        self,
        queue: str,
        function: str,
        path: str,
        payload: dict[str, Any],
        name: str | None = None,
    ) -> None:
        from google.api_core import exceptions as gexc
        from google.api_core import retry as gretry
        from google.cloud import tasks_v2

        parent = self.queue_path(queue)
        url = self.settings.function_url(function) + path
        headers = {"Content-Type": "application/json"}
        request = tasks_v2.HttpRequest(
            http_method=tasks_v2.HttpMethod.POST,
            url=url,
            headers=headers,
            body=json.dumps(payload, separators=(",", ":")).encode(),
        )
        secret = self.settings.internal_secret
        invoker = self.settings.tasks_invoker
        if secret:
            headers[INTERNAL_HEADER] = secret
            request.headers = headers
        elif invoker:
            request.oidc_token = tasks_v2.OidcToken(
                service_account_email=invoker, audience=self.settings.function_url(function)
            )
        task = tasks_v2.Task(http_request=request)
        # create_task has no default retry (it is not idempotent without a name); a named
        # task is, so transient failures are retried rather than losing the work.
        retry = None
        if name:
            task.name = f"{parent}/tasks/{name}"
            retry = gretry.Retry(
                predicate=gretry.if_exception_type(
                    gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError
                ),
                initial=0.1,
                maximum=2.0,
                timeout=10.0,
            )
        try:
            self.client.create_task(parent=parent, task=task, retry=retry)
        except gexc.AlreadyExists:
            log.info("task %s already enqueued", name)
