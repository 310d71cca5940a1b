"""Run gcloud-tasks-emulator bound to one host, dispatching as Cloud Tasks does.

Executed by path with the interpreter of the emulator's own virtualenv (it needs protobuf<5), so
it must not import anything from devstack. Usage: ``python _tasks_emulator_shim.py HOST start -p
PORT ...`` (everything after HOST goes to the emulator's own CLI).

Two patches of gcloud-tasks-emulator 0.6.2:

- it hard-codes ``[::]:PORT``; we rewrite that address when the gRPC server is created;
- it dispatches one task at a time per queue (a thread per queue that POSTs and waits) and
  re-queues a failed task at once. Cloud Tasks dispatches up to the queue's
  ``max_concurrent_dispatches`` at once, at most ``max_dispatches_per_second``, and retries a
  failed task after a backoff, up to ``max_attempts``. With ``VALORIZE_TASKS_DISPATCH`` set
  (JSON: queue id -> ``{"rate", "concurrency", "max_attempts", "min_backoff",
  "max_backoff", "max_doublings"}``, seconds), each queue's thread hands tasks to a pool of
  that many workers instead, paced by a token bucket, and failed tasks wait for their backoff.
  A queue not named there keeps the emulator's own behaviour. Paused queues (PauseQueue)
  dispatch nothing, as in Cloud Tasks: a backlog can be built, then released.

With ``VALORIZE_TASKS_STATS`` set, per-queue counts (pending, in flight, attempts, failed
attempts by status, tasks given up) are written to that JSON file every 0.2 s: what Cloud
Tasks' queue metrics show, for benchmarks (load/drain.py) and tests.
"""

import json
import os
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib import error

import grpc
from gcloud_tasks_emulator import __main__ as emulator_cli
from gcloud_tasks_emulator import server as emulator
from google.cloud.tasks_v2 import Queue

STATS_EVERY = 0.2
IDLE_SLEEP = 0.02


def _bind_only(host: str) -> None:
    create_server = grpc.server

    def server(*args: Any, **kwargs: Any) -> Any:
        grpc_server = create_server(*args, **kwargs)
        add_port = grpc_server.add_insecure_port

        def add_insecure_port(address: str) -> int:
            port = address.rsplit(":", 1)[1]
            return int(add_port(f"{host}:{port}"))

        grpc_server.add_insecure_port = add_insecure_port
        return grpc_server

    grpc.server = server


class QueueStats:
    """What one queue did so far (guarded by the dispatcher's lock)."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.attempts = 0
        self.failed = 0
        self.given_up = 0
        self.statuses: Counter[int] = Counter()
        self.first_dispatch: float | None = None
        self.last_response: float | None = None

    def as_dict(self, pending: int) -> dict[str, Any]:
        return {
            "pending": pending,
            "in_flight": self.in_flight,
            "attempts": self.attempts,
            "failed": self.failed,
            "given_up": self.given_up,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "first_dispatch": self.first_dispatch,
            "last_response": self.last_response,
        }


class TokenBucket:
    """At most ``rate`` dispatches per second, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            time.sleep((1 - self.tokens) / self.rate)


def _backoff(config: dict[str, float], attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: min_backoff doubled
    up to max_doublings times, never beyond max_backoff (Cloud Tasks then grows it linearly;
    no task here fails often enough for that to matter)."""
    doublings = min(attempts - 1, int(config["max_doublings"]))
    return float(min(config["max_backoff"], config["min_backoff"] * 2**doublings))


def _due(task: Any, now: datetime) -> bool:
    when = task.schedule_time
    return not when or when <= now


def _dispatch_like_cloud_tasks(settings: dict[str, dict[str, float]], stats_path: str) -> None:
    lock = threading.Lock()
    stats: dict[str, QueueStats] = {}
    states: list[Any] = []
    create_task = emulator.QueueState.create_task

    def locked_create_task(self: Any, queue: str, task: Any) -> Any:
        if not states:
            states.append(self)
        with lock:
            return create_task(self, queue, task)

    emulator.QueueState.create_task = locked_create_task
    serial = emulator.Processor._process_queue

    def process_queue(self: Any, queue: str) -> None:
        config = settings.get(queue.rsplit("/", 1)[-1])
        if config is None:
            serial(self, queue)
            return
        state = self._state
        if not states:
            states.append(state)
        concurrency = int(config["concurrency"])
        slots = threading.BoundedSemaphore(concurrency)
        bucket = TokenBucket(float(config["rate"]))
        counts = stats.setdefault(queue, QueueStats())
        pool = ThreadPoolExecutor(concurrency, thread_name_prefix=queue.rsplit("/", 1)[-1])

        def take_due() -> Any:
            with lock:
                tasks = state._queue_tasks.get(queue)
                if not tasks:
                    return None
                now = datetime.now(UTC)
                for index, task in enumerate(tasks):
                    if _due(task, now):
                        counts.in_flight += 1
                        return tasks.pop(index)
                return None

        def attempt(task: Any) -> None:
            try:
                task.dispatch_count += 1
                with lock:
                    counts.attempts += 1
                    counts.first_dispatch = counts.first_dispatch or time.time()
                try:
                    response = emulator._make_task_request(
                        queue, task, state._target_host, state._target_port
                    )
                    response.read()
                    response.close()
                    status = int(response.status)
                except error.HTTPError as failure:
                    status = failure.code
                except Exception:  # noqa: BLE001 - no answer at all: Cloud Tasks retries it
                    emulator.logger.exception("[TASKS] %s got no answer", task.name)
                    status = 0
                with lock:
                    counts.in_flight -= 1
                    counts.statuses[status] += 1
                    counts.last_response = time.time()
                    if 200 <= status < 300:
                        return
                    counts.failed += 1
                    if task.dispatch_count >= int(config["max_attempts"]):
                        counts.given_up += 1
                        emulator.logger.warning(
                            "[TASKS] giving up %s after %d attempts (last: %s)",
                            task.name,
                            task.dispatch_count,
                            status,
                        )
                        return
                    delay = _backoff(config, task.dispatch_count)
                    task.schedule_time = datetime.now(UTC) + timedelta(seconds=delay)
                    state._queue_tasks[queue].append(task)
                    emulator.logger.info(
                        "[TASKS] %s answered %s; retry in %.1f s", task.name, status, delay
                    )
            finally:
                slots.release()

        while self._is_running.is_set() and queue in state._queues:
            if state.queue(queue).state != Queue.State.RUNNING:
                time.sleep(IDLE_SLEEP)
                continue
            if not slots.acquire(timeout=0.5):
                continue
            task = take_due()
            if task is None:
                slots.release()
                time.sleep(IDLE_SLEEP)
                continue
            bucket.take()
            pool.submit(attempt, task)
        pool.shutdown(wait=False, cancel_futures=True)

    emulator.Processor._process_queue = process_queue

    def write_stats() -> None:
        while True:
            time.sleep(STATS_EVERY)
            if not states:
                continue
            state = states[0]
            with lock:
                snapshot = {
                    queue: stats.get(queue, QueueStats()).as_dict(len(tasks))
                    for queue, tasks in state._queue_tasks.items()
                }
            partial = f"{stats_path}.tmp"
            with open(partial, "w", encoding="utf-8") as out:
                json.dump({"at": time.time(), "queues": snapshot}, out)
            os.replace(partial, stats_path)

    if stats_path:
        threading.Thread(target=write_stats, name="stats", daemon=True).start()


if __name__ == "__main__":
    _bind_only(sys.argv[1])
    dispatch = os.environ.get("VALORIZE_TASKS_DISPATCH")
    if dispatch:
        _dispatch_like_cloud_tasks(json.loads(dispatch), os.environ.get("VALORIZE_TASKS_STATS", ""))
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    emulator_cli.main()
