"""The local Cloud Tasks emulator dispatches as Cloud Tasks does (devstack/_tasks_emulator_shim.py):
up to the queue's max concurrent dispatches at once, nothing from a paused queue, failed tasks
retried up to max attempts, and its counts in the stats file."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from devstack.ports import HOST, free_port
from devstack.services import TasksEmulator

pytestmark = pytest.mark.integration

QUEUE = "projects/p/locations/l/queues/q"
CONCURRENCY = 4
TASKS = 12


class Target:
    """An HTTP server that holds each request until CONCURRENCY are in flight together (or
    `hold` seconds passed) and records the most it saw at once; paths ending in /fail
    answer 503."""

    def __init__(self, hold: float = 3.0) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.seen: list[str] = []
        self.full = threading.Event()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with target.lock:
                    target.active += 1
                    target.most = max(target.most, target.active)
                    target.seen.append(self.path)
                    if target.active >= CONCURRENCY:
                        target.full.set()
                if not self.path.endswith("/fail"):
                    target.full.wait(hold)
                with target.lock:
                    target.active -= 1
                self.send_response(503 if self.path.endswith("/fail") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.server.shutdown()


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[TasksEmulator]:
    dispatch = {
        "q": {
            "rate": 500,
            "concurrency": CONCURRENCY,
            "max_attempts": 3,
            "min_backoff": 0.1,
            "max_backoff": 1,
            "max_doublings": 4,
        }
    }
    service = TasksEmulator(free_port(), tmp_path, [QUEUE], dispatch=dispatch)
    service.start()
    try:
        service.wait_ready(90)
        yield service
    finally:
        service.stop()


def client(emulator: TasksEmulator) -> tasks_v2.CloudTasksClient:
    channel = grpc.insecure_channel(emulator.host)
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def enqueue(tasks: tasks_v2.CloudTasksClient, url: str, name: str) -> None:
    request = tasks_v2.HttpRequest(http_method=tasks_v2.HttpMethod.POST, url=url, body=b"{}")
    task = tasks_v2.Task(name=f"{QUEUE}/tasks/{name}", http_request=request)
    tasks.create_task(parent=QUEUE, task=task)


def until(probe: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def stats(emulator: TasksEmulator) -> dict[str, Any]:
    if not emulator.stats_path.exists():
        return {}
    return dict(json.loads(emulator.stats_path.read_text())["queues"][QUEUE])


def test_a_paused_backlog_is_dispatched_at_the_declared_concurrency(
    emulator: TasksEmulator, target: Target
) -> None:
    tasks = client(emulator)
    tasks.pause_queue(name=QUEUE)
    for i in range(TASKS):
        enqueue(tasks, f"{target.url}/ok/{i}", f"t{i}")
    until(lambda: stats(emulator).get("pending") == TASKS, "the backlog")
    assert target.seen == [] and stats(emulator)["attempts"] == 0

    tasks.resume_queue(name=QUEUE)
    until(lambda: stats(emulator).get("statuses") == {"200": TASKS}, "the drain", 60)

    assert sorted(target.seen) == sorted(f"/ok/{i}" for i in range(TASKS))
    assert target.most == CONCURRENCY
    counts = stats(emulator)
    assert (counts["attempts"], counts["failed"], counts["pending"]) == (TASKS, 0, 0)


def test_a_failing_task_is_retried_up_to_max_attempts_then_given_up(
    emulator: TasksEmulator, target: Target
) -> None:
    enqueue(client(emulator), f"{target.url}/fail", "doomed")

    until(lambda: stats(emulator).get("given_up") == 1, "giving up", 60)

    assert target.seen == ["/fail"] * 3
    counts = stats(emulator)
    assert counts["attempts"] == counts["failed"] == 3
    assert counts["statuses"] == {"503": 3} and counts["pending"] == 0
