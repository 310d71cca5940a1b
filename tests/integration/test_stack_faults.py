"""What the fault suite (load/chaos.py) needs of the local stack: each running service by name.
(That the tasks emulator retries a failed task after its queue's backoff, as Cloud Tasks does,
so a worker restarting for a few seconds gets its task again: tests/integration/
test_tasks_emulator.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import Stack, StackConfig
from devstack.services import RedisServer

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
