"""The notification store against the Firestore emulator, and the alert-profile cache against
the stack's Redis: the semantics the fakes promise, checked on the real thing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from valorize.adapters.alert_profiles import RedisAlertProfiles
from valorize.adapters.firestore_notifications import FirestoreNotificationStore
from valorize.domain.alerts import AlertProfile
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.notifications import UNSET, Notification, NotificationKind
from valorize.service.ports import EmailClaim

pytestmark = pytest.mark.integration
K = NotificationKind
T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def nstore(emulator_env: dict[str, str]) -> FirestoreNotificationStore:
    from valorize import bootstrap

    return bootstrap.notification_store()


def note(i: int, at: datetime = T0) -> Notification:
    return Notification(f"n{i}", K.IMPORT_FINISHED, f"t{i}", "b", {"i": i}, at)


def test_create_if_absent_list_count_and_read(nstore: FirestoreNotificationStore) -> None:
    uid = "ns-" + uuid.uuid4().hex
    for i in range(5):
        assert nstore.create_notification(uid, note(i, T0 + timedelta(seconds=i)))
    assert not nstore.create_notification(uid, note(0, T0 + timedelta(hours=1)))
    assert nstore.get_notification(uid, "n0") == note(0)  # the first one stays
    assert nstore.count_unread(uid) == 5

    page = nstore.list_notifications(uid, False, 2, None)
    assert [n.id for n in page.items] == ["n4", "n3"] and page.next_cursor
    rest = nstore.list_notifications(uid, False, 10, page.next_cursor)
    assert [n.id for n in rest.items] == ["n2", "n1", "n0"] and rest.next_cursor is None

    read = nstore.mark_read(uid, "n3", T0 + timedelta(days=1))
    assert read.read_at == T0 + timedelta(days=1)
    assert nstore.mark_read(uid, "n3", T0 + timedelta(days=2)).read_at == read.read_at
    assert [n.id for n in nstore.list_notifications(uid, True, 10, None).items] == [
        "n4",
        "n2",
        "n1",
        "n0",
    ]
    assert nstore.count_unread(uid) == 4
    assert nstore.mark_all_read(uid, T0 + timedelta(days=3)) == 4
    assert nstore.count_unread(uid) == 0
    assert nstore.list_notifications(uid, True, 10, None).items == []
    with pytest.raises(NotFound):
        nstore.mark_read(uid, "missing", T0)
    with pytest.raises(ValidationFailed):
        nstore.list_notifications(uid, False, 10, "bm90LWEta2V5")


def test_email_claim_lease(nstore: FirestoreNotificationStore) -> None:
    uid = "ns-" + uuid.uuid4().hex
    lease = timedelta(minutes=2)
    assert nstore.claim_email(uid, "n1", T0, lease) is EmailClaim.MISSING
    nstore.create_notification(uid, note(1))
    assert nstore.claim_email(uid, "n1", T0, lease) is EmailClaim.CLAIMED
    assert nstore.claim_email(uid, "n1", T0 + timedelta(seconds=5), lease) is EmailClaim.BUSY
    nstore.finish_email(uid, "n1", None)  # sending failed: free again
    assert nstore.claim_email(uid, "n1", T0, lease) is EmailClaim.CLAIMED
    # A holder that died: its claim expires.
    assert nstore.claim_email(uid, "n1", T0 + lease, lease) is EmailClaim.CLAIMED
    nstore.finish_email(uid, "n1", T0 + lease)
    assert nstore.claim_email(uid, "n1", T0 + 2 * lease, lease) is EmailClaim.DONE
    stored = nstore.get_notification(uid, "n1")
    assert stored is not None and stored.emailed_at == T0 + lease


def test_preferences_merge(nstore: FirestoreNotificationStore) -> None:
    uid = "ns-" + uuid.uuid4().hex
    assert nstore.get_preferences(uid).email == {}
    nstore.update_preferences(uid, {K.LOW_BALANCE: False}, 500, T0)
    nstore.update_preferences(uid, {K.IMPORT_FINISHED: True}, UNSET, T0)
    prefs = nstore.get_preferences(uid)
    assert prefs.email == {K.LOW_BALANCE: False, K.IMPORT_FINISHED: True}
    assert prefs.large_transaction_threshold == 500
    nstore.update_preferences(uid, {}, None, T0)
    assert nstore.get_preferences(uid).large_transaction_threshold is None


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
