"""Work handed to another function: Cloud Tasks, and notifications through them."""

from __future__ import annotations

from typing import Any, Protocol

from valorize.domain.notifications import NotificationRequest


class TaskQueue(Protocol):
    def enqueue(
        self,
        queue: str,
        function: str,
        path: str,
        payload: dict[str, Any],
        name: str | None = None,
    ) -> None: ...


class Notifier(Protocol):
    """Hands a notification to the notify function (a Cloud Task in production)."""

    def notify(self, request: NotificationRequest) -> None: ...
