"""Cloud Tasks and the notifier, recording what they were given."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from valorize.domain.notifications import NotificationRequest


@dataclass
class Task:
    queue: str
    function: str
    path: str
    payload: dict[str, Any]
    name: str | None


@dataclass
class RecordingQueue:
    """The TaskQueue port: keeps tasks; like Cloud Tasks, refuses a name it has seen."""

    tasks: list[Task] = field(default_factory=list)
    names: set[str] = field(default_factory=set)

    def enqueue(
        self,
        queue: str,
        function: str,
        path: str,
        payload: dict[str, Any],
        name: str | None = None,
    ) -> None:
        if name is not None:
            if name in self.names:
                return  # AlreadyExists: the adapter logs and carries on
            self.names.add(name)
        self.tasks.append(Task(queue, function, path, payload, name))

    def take(self, path: str | None = None) -> list[Task]:
        """Remove and return the pending tasks (for `path` only, when given)."""
        taken = [t for t in self.tasks if path is None or t.path == path]
        self.tasks = [t for t in self.tasks if t not in taken]
        return taken


@dataclass
class FakeNotifier:
    """The Notifier port: keeps what it was handed; `fail` makes it refuse, like a notify
    function without a configured URL."""

    sent: list[NotificationRequest] = field(default_factory=list)
    fail: bool = False

    def notify(self, request: NotificationRequest) -> None:
        if self.fail:
            raise LookupError("no URL configured for function 'notify'")
        self.sent.append(request)
