"""The alert-profile cache against the stack's Redis (the notification store's contract is in
tests/contracts/test_notifications.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from valorize.adapters.alert_profiles import RedisAlertProfiles
from valorize.domain.alerts import AlertProfile
from valorize.domain.notifications import NotificationKind

pytestmark = pytest.mark.integration
K = NotificationKind
T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_alert_profile_cache_follows_invalidations(emulator_env: dict[str, str]) -> None:
    client = redis.Redis.from_url(emulator_env["REDIS_URL"])
    uid = "ap-" + uuid.uuid4().hex
    truth = {"profile": AlertProfile("BRL")}
    builds: list[str] = []

    def build(user_id: str) -> AlertProfile:
        builds.append(user_id)
        return truth["profile"]

    profiles = RedisAlertProfiles(client, build)
    other = RedisAlertProfiles(client, build)  # another instance
    assert profiles.get(uid) == AlertProfile("BRL") and len(builds) == 1
    assert other.get(uid) == AlertProfile("BRL") and len(builds) == 1  # cached
    truth["profile"] = AlertProfile("BRL", 10)
    other.forget(uid)
    assert profiles.get(uid) == AlertProfile("BRL", 10) and len(builds) == 2

    # A rebuild that raced an invalidation stores the old generation: not trusted again.
    stale = RedisAlertProfiles(client, lambda _: AlertProfile("BRL", 1))
    client.delete(f"alerts:{{{uid}}}:profile")
    gen = client.get(f"alerts:{{{uid}}}:gen")
    stale.get(uid)  # builds the stale profile under the current generation...
    assert gen is not None
    profiles.forget(uid)  # ...and the change it raced bumps the generation
    truth["profile"] = AlertProfile("BRL", 20)
    assert profiles.get(uid) == AlertProfile("BRL", 20)


def test_alert_profiles_fall_back_to_firestore_when_redis_is_down() -> None:
    # As bootstrap builds it: one attempt (redis-py's default retries take seconds).
    dead = redis.Redis(
        port=1, socket_connect_timeout=0.05, socket_timeout=0.05, retry=Retry(NoBackoff(), 0)
    )
    now = [0.0]
    builds: list[str] = []

    def build(user_id: str) -> AlertProfile:
        builds.append(user_id)
        return AlertProfile("BRL")

    profiles = RedisAlertProfiles(dead, build, cooldown=5, clock=lambda: now[0])
    assert profiles.get("u") == AlertProfile("BRL")
    profiles.forget("u")  # logged, never raised
    assert profiles.get("u") == AlertProfile("BRL") and len(builds) == 2
