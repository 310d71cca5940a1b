"""Run gcloud-tasks-emulator bound to one host instead of every interface.

Executed by path with the interpreter of the emulator's own virtualenv (it needs protobuf<5), so
it must not import anything from devstack. The emulator hard-codes ``[::]:PORT``; we rewrite
that address when the gRPC server is created. Usage: ``python _tasks_emulator_shim.py HOST
start -p PORT ...`` (everything after HOST goes to the emulator's own CLI).

With ``VALORIZE_TASKS_BACKOFF=MIN:MAX`` (seconds) a failed delivery is retried after MIN,
2*MIN, 4*MIN... up to MAX seconds, as Cloud Tasks backs off, instead of at once: the emulator's
own retries come 0.1 s apart, so a target that is down for a restart (a killed instance)
would use up every attempt before it is back.
"""

import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from gcloud_tasks_emulator import __main__ as emulator_cli


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


def _back_off(first: float, most: float) -> None:
    from gcloud_tasks_emulator.server import QueueState

    submit = QueueState.submit_task
    dispatched: dict[str, int] = {}

    def submit_task(self: Any, task_name: str, force_run: bool = False) -> Any:
        task = submit(self, task_name, force_run)
        # A task not yet due is only moved to the back of its queue: no new attempt.
        if task.dispatch_count == dispatched.get(task.name, 0):
            return task
        if not 400 <= task.last_attempt.response_status.code < 600:
            dispatched.pop(task.name, None)  # delivered: the emulator forgets it too
            return task
        dispatched[task.name] = task.dispatch_count
        delay = min(most, first * 2 ** (task.dispatch_count - 1))
        task.schedule_time = datetime.now(UTC) + timedelta(seconds=delay)
        return task

    QueueState.submit_task = submit_task


if __name__ == "__main__":
    _bind_only(sys.argv[1])
    backoff = os.environ.get("VALORIZE_TASKS_BACKOFF")
    if backoff:
        low, high = backoff.split(":")
        _back_off(float(low), float(high))
    sys.argv = [sys.argv[0], *sys.argv[2:]]
    emulator_cli.main()
