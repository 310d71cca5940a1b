"""The login throttle against a real Redis (its own, on a free port): the count and the check
are one atomic step, so a burst of concurrent attempts lets exactly `limit` through."""

from __future__ import annotations

import threading

import pytest
import redis

from devstack.ports import free_port
from valorize.adapters.security import RedisLoginThrottle

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("burst", [5, 6, 64])
def test_a_concurrent_burst_lets_exactly_the_limit_through(client: redis.Redis, burst: int) -> None:
    throttle = RedisLoginThrottle(client, limit=5, window=900)
    start = threading.Barrier(burst)
    waits: list[int] = []
    lock = threading.Lock()

    def attempt() -> None:
        start.wait()
        wait = throttle.attempt("ana@example.com|203.0.113.7")
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=attempt) for _ in range(burst)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert waits.count(0) == min(burst, 5)
    assert all(0 < w <= 900 for w in waits if w)
    # The window runs from the first failure; a throttled attempt does not extend it.
    assert 0 < client.ttl(RedisLoginThrottle._key("ana@example.com|203.0.113.7")) <= 900


def test_a_success_clears_the_count_and_keys_are_separate(client: redis.Redis) -> None:
    throttle = RedisLoginThrottle(client, limit=2, window=60)
    assert [throttle.attempt("a|1") for _ in range(2)] == [0, 0]
    assert throttle.attempt("a|1") > 0
    assert throttle.attempt("a|2") == 0
    throttle.succeeded("a|1")
    assert throttle.attempt("a|1") == 0


def test_it_fails_open_when_redis_is_down() -> None:
    gone = redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2)
    throttle = RedisLoginThrottle(gone, limit=1)
    assert [throttle.attempt("a|1") for _ in range(3)] == [0, 0, 0]
    throttle.succeeded("a|1")
