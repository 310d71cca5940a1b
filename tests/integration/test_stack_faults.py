"""What the fault suite (load/chaos.py) needs of the local stack: each running service by name,
and a tasks emulator that retries a failed task after a backoff, as Cloud Tasks does, so a
worker that is restarting for a few seconds gets its task again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import grpc
import pytest
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

from devstack import Stack, StackConfig
from devstack.ports import HOST
from devstack.services import PROJECT_ID, TASKS_LOCATION, RedisServer

pytestmark = pytest.mark.integration

NOTHING = {
    "firestore": False,
    "redis": False,
    "storage": False,
    "tasks": False,
    "smtp": False,
    "functions": [],
    "gateway": False,
}


def test_a_running_service_is_found_by_its_name(tmp_path: Path) -> None:
    with Stack(StackConfig(**{**NOTHING, "redis": True}, log_dir=tmp_path)) as stack:
        redis_server = stack.process("redis")
        assert isinstance(redis_server, RedisServer) and redis_server.pid in stack.pids()
        with pytest.raises(KeyError, match="running: \\['redis'\\]"):
            stack.process("firestore")


@pytest.fixture
def failing_twice() -> Iterator[tuple[str, list[float]]]:
    """A task target answering 500 to its first two deliveries, then 200; their times."""
    arrivals: list[float] = []

    class Target(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrivals.append(time.monotonic())
            self.send_response(500 if len(arrivals) <= 2 else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer((HOST, 0), Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{HOST}:{server.server_port}/task", arrivals
    finally:
        server.shutdown()


def test_the_tasks_emulator_backs_off_between_attempts_of_a_failed_task(
    tmp_path: Path, failing_twice: tuple[str, list[float]]
) -> None:
    url, arrivals = failing_twice
    config = StackConfig(**{**NOTHING, "tasks": True}, tasks_retry_backoff=(1, 2), log_dir=tmp_path)
    with Stack(config) as stack:
        assert stack.urls.tasks_host
        channel = grpc.insecure_channel(stack.urls.tasks_host)
        client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        queue = f"projects/{PROJECT_ID}/locations/{TASKS_LOCATION}/queues/imports"
        task = {"http_request": {"url": url, "http_method": "POST", "body": b"{}"}}
        client.create_task(parent=queue, task=task)
        deadline = time.monotonic() + 60
        while len(arrivals) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # a fourth delivery would be a redelivery of a task that succeeded
    assert len(arrivals) == 3, arrivals
    first, second = arrivals[1] - arrivals[0], arrivals[2] - arrivals[1]
    # At least the backoff (1 s, then doubled); the emulator alone retries 0.1 s apart.
    assert first >= 1 and second >= 2, (first, second)
