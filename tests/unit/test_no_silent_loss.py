"""A function enqueues only on the queues it declares, and a failing bus subscriber is logged
at ERROR with its event (the marker a log-based metric counts), never swallowed."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from valorize.adapters.tasks import CloudTasksQueue, UndeclaredQueue
from valorize.config import Settings
from valorize.domain.events import BudgetChanged, Event
from valorize.entrypoints.request_log import JsonLogFormatter
from valorize.service.messagebus import SUBSCRIBER_FAILED, MessageBus


def no_client() -> Any:
    raise AssertionError("no Cloud Tasks client may be built for it")


@pytest.mark.parametrize("declared", ["", "imports", "imports,automations", None])
def test_an_undeclared_queue_is_refused_before_any_call(declared: str | None) -> None:
    env = {} if declared is None else {"VALORIZE_TASK_QUEUES": declared}
    queue = CloudTasksQueue(Settings.from_env(env), no_client)
    with pytest.raises(UndeclaredQueue, match="notifications"):
        queue.enqueue("notifications", "notify", "/api/notify/deliver", {"x": 1}, name="n1")


def test_a_declared_queue_maps_to_its_path() -> None:
    env = {
        "VALORIZE_TASK_QUEUES": "imports,notifications",
        "TASKS_QUEUE_IMPORTS": "projects/p/locations/r/queues/imports",
        "VALORIZE_TASKS_LOCATION": "europe-west1",
        "GOOGLE_CLOUD_PROJECT": "p",
    }
    queue = CloudTasksQueue(Settings.from_env(env), no_client)
    assert queue.queue_path("imports") == "projects/p/locations/r/queues/imports"
    assert queue.queue_path("notifications") == (
        "projects/p/locations/europe-west1/queues/notifications"
    )


def test_a_failing_subscriber_is_logged_at_error_with_its_event_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MessageBus()
    ran: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("queue unreachable")

    bus.subscribe(BudgetChanged, broken)
    bus.subscribe(BudgetChanged, ran.append)
    event = BudgetChanged("user-ü", month="2026-11")
    with caplog.at_level(logging.INFO, logger="valorize.service.messagebus"):
        bus.publish(event)
    assert ran == [event]
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    line = json.loads(JsonLogFormatter().format(record))
    assert line["severity"] == "ERROR"
    assert line["valorize_event"] == SUBSCRIBER_FAILED
    assert line["event_type"] == "BudgetChanged" and line["user_id"] == "user-ü"
    assert "2026-11" in line["event"] and "broken" in line["subscriber"]
    assert "queue unreachable" in line["stack_trace"]
