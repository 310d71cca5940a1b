"""A real Redis of the module's own, on a free port, flushed before each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devstack.ports import free_port
from devstack.services import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        server.wait_ready(20)
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def round_trips(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The command of every round trip `client` makes from here on, in order."""
    sent: list[object] = []
    execute = client.execute_command
    monkeypatch.setattr(
        client, "execute_command", lambda *a, **k: sent.append(a[0]) or execute(*a, **k)
    )
    return sent


@pytest.fixture
def dead_redis(tmp_path: Path) -> redis.Redis:
    """A client of a Redis that is configured but never started: refused at once."""
    down = RedisServer(free_port(), tmp_path)
    return redis.Redis.from_url(down.url, socket_timeout=0.2, socket_connect_timeout=0.2)
