"""The Notifier port on Cloud Tasks: one task per notification, named after the
notification's deterministic id, POSTed to the notify function's deliver endpoint."""

from __future__ import annotations

from dataclasses import asdict

from valorize.adapters.tasks import task_id
from valorize.domain.notifications import NotificationRequest
from valorize.service.ports import TaskQueue

DELIVER_PATH = "/api/notify/deliver"


class TaskNotifier:
    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue

    def notify(self, request: NotificationRequest) -> None:
        payload = asdict(request)
        payload["kind"] = request.kind.value
        self.queue.enqueue(
            "notifications",
            "notify",
            DELIVER_PATH,
            payload,
            name=task_id("notify", request.user_id, request.id),
        )
