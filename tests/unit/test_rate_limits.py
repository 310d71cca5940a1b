"""Per-user rate limits on writes and uploads (issue 12): the HTTP pipeline answers 429 with
Retry-After before reading the body, counts users apart and reads not at all; the Redis
adapter fails open, logged at ERROR with its marker, and then stays off Redis for a while."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import redis

from tests.fakes.rate_limits import CountingLimiter
from tests.unit.conftest import OTHER, USER, World
from tests.unit.test_http import AUTH, Harness
from valorize.adapters.rate_limits import RATE_LIMITS_UNAVAILABLE, RedisRateLimiter
from valorize.domain.errors import RateLimited
from valorize.service.rate_limits import UPLOADS, WRITES, RateLimits


@pytest.fixture
def app(world: World) -> Harness:
    return Harness(world)


def limiter(world: World, **limits: int) -> CountingLimiter:
    fake: CountingLimiter = world.rate_limiter
    fake.limits = {WRITES: limits.get("writes", 10**6), UPLOADS: limits.get("uploads", 10**6)}
    return fake


def txn_body(world: World) -> dict[str, Any]:
    account = world.account()
    return {"account_id": account.id, "amount": -100, "date": "2025-03-10", "description": "x"}


class TestPipeline:
    def test_writes_past_the_limit_get_429_with_retry_after(
        self, app: Harness, world: World
    ) -> None:
        body = txn_body(world)
        limiter(world, writes=2)
        for _ in range(2):
            assert app("POST", "/api/transactions", json_body=body, headers=AUTH).status_code == 201
        refused = app("POST", "/api/transactions", json_body=body, headers=AUTH)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "42"
        assert refused.mimetype == "application/problem+json"
        assert "retry in 42 s" in json.loads(refused.get_data())["detail"]
        # Refused before the body is even read: a malformed one is still a 429.
        bad = app("POST", "/api/transactions", data=b"{", headers=AUTH)
        assert bad.status_code == 429

    def test_reads_are_not_counted(self, app: Harness, world: World) -> None:
        fake = limiter(world, writes=1)
        for _ in range(5):
            assert app("GET", "/api/transactions", headers=AUTH).status_code == 200
        assert fake.hits == {}

    def test_unauthenticated_requests_are_refused_before_counting(
        self, app: Harness, world: World
    ) -> None:
        fake = limiter(world, writes=1)
        assert app("POST", "/api/transactions", json_body={}).status_code == 401
        assert fake.hits == {}

    def test_a_multipart_write_counts_as_an_upload_and_a_write(
        self, app: Harness, world: World
    ) -> None:
        fake = limiter(world, uploads=1)
        multipart = {**AUTH, "Content-Type": "multipart/form-data; boundary=x"}
        app("POST", "/api/transactions", data=b"--x--", headers=multipart)
        assert fake.hits == {(UPLOADS, USER): 1, (WRITES, USER): 1}
        refused = app("POST", "/api/transactions", data=b"--x--", headers=multipart)
        assert refused.status_code == 429
        # The refused upload did not spend a write.
        assert fake.hits[(WRITES, USER)] == 1


class TestService:
    def test_users_are_counted_apart(self) -> None:
        limits = RateLimits(CountingLimiter({WRITES: 1}))
        limits.check(USER, upload=False)
        limits.check(OTHER, upload=False)
        with pytest.raises(RateLimited) as e:
            limits.check(USER, upload=False)
        assert e.value.retry_after == 42 and e.value.status == 429


class TestRedisAdapterFailsOpen:
    def test_an_unreachable_redis_lets_writes_through_logged_at_error_once_per_interval(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Port 9 (discard) on the loopback: refused at once.
        client = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
        now = [1000.0]
        adapter = RedisRateLimiter(
            client, {WRITES: "1/minute"}, breaker_seconds=5, clock=lambda: now[0]
        )
        with caplog.at_level(logging.INFO, logger="valorize.adapters.rate_limits"):
            assert [adapter.hit(WRITES, USER) for _ in range(3)] == [0, 0, 0]
            now[0] += 6
            assert adapter.hit(WRITES, USER) == 0
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 2
        assert all(r.entry["valorize_event"] == RATE_LIMITS_UNAVAILABLE for r in errors)  # type: ignore[attr-defined]

    def test_a_kind_without_a_rate_is_not_limited(self) -> None:
        client = redis.Redis(host="127.0.0.1", port=9)
        adapter = RedisRateLimiter(client, {})
        assert adapter.hit(UPLOADS, USER) == 0

    def test_a_rate_that_is_not_one_is_refused_at_start(self) -> None:
        with pytest.raises(ValueError):
            RedisRateLimiter(redis.Redis(host="127.0.0.1", port=9), {WRITES: "lots"})
