"""The NotificationStore port: the inbox, email claims and preferences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.contracts.conftest import Make
from valorize.bootstrap import Services
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.notifications import UNSET, Notification, NotificationKind
from valorize.service.ports import EmailClaim

K = NotificationKind
T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


def note(i: int, at: datetime = T0) -> Notification:
    return Notification(f"n{i}", K.IMPORT_FINISHED, f"t{i}", "b ü", {"i": i}, at)


def test_create_if_absent_list_count_and_read(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.notification_store
    for i in range(5):
        assert store.create_notification(uid, note(i, T0 + timedelta(seconds=i)))
    assert not store.create_notification(uid, note(0, T0 + timedelta(hours=1)))
    assert store.get_notification(uid, "n0") == note(0)  # the first one stays
    assert store.get_notification(uid, "n9") is None
    assert store.count_unread(uid) == 5

    page = store.list_notifications(uid, False, 2, None)
    assert [n.id for n in page.items] == ["n4", "n3"] and page.next_cursor
    rest = store.list_notifications(uid, False, 10, page.next_cursor)
    assert [n.id for n in rest.items] == ["n2", "n1", "n0"] and rest.next_cursor is None

    read = store.mark_read(uid, "n3", T0 + timedelta(days=1))
    assert read.read_at == T0 + timedelta(days=1)
    assert store.mark_read(uid, "n3", T0 + timedelta(days=2)).read_at == read.read_at
    unread = store.list_notifications(uid, True, 10, None).items
    assert [n.id for n in unread] == ["n4", "n2", "n1", "n0"]
    assert store.count_unread(uid) == 4
    assert store.mark_all_read(uid, T0 + timedelta(days=3)) == 4
    assert store.count_unread(uid) == 0
    assert store.list_notifications(uid, True, 10, None).items == []
    with pytest.raises(NotFound):
        store.mark_read(uid, "missing", T0)
    for bad in ("bm90LWEta2V5", encode_cursor("2025-03-01T12:00:00Z#n1")):
        with pytest.raises(ValidationFailed):
            store.list_notifications(uid, False, 10, bad)


def test_email_claim_lease(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.notification_store
    lease = timedelta(minutes=2)
    assert store.claim_email(uid, "n1", T0, lease) is EmailClaim.MISSING
    store.create_notification(uid, note(1))
    assert store.claim_email(uid, "n1", T0, lease) is EmailClaim.CLAIMED
    assert store.claim_email(uid, "n1", T0 + timedelta(seconds=5), lease) is EmailClaim.BUSY
    store.finish_email(uid, "n1", None)  # sending failed: free again
    assert store.claim_email(uid, "n1", T0, lease) is EmailClaim.CLAIMED
    # A holder that died: its claim expires.
    assert store.claim_email(uid, "n1", T0 + lease, lease) is EmailClaim.CLAIMED
    store.finish_email(uid, "n1", T0 + lease)
    assert store.claim_email(uid, "n1", T0 + 2 * lease, lease) is EmailClaim.DONE
    stored = store.get_notification(uid, "n1")
    assert stored is not None and stored.emailed_at == T0 + lease


def test_preferences_merge(services: Services, make: Make) -> None:
    uid = make.user()
    store = services.notification_store
    assert store.get_preferences(uid).email == {}
    store.update_preferences(uid, {K.LOW_BALANCE: False}, 500, T0)
    store.update_preferences(uid, {K.IMPORT_FINISHED: True}, UNSET, T0)
    prefs = store.get_preferences(uid)
    assert prefs.email == {K.LOW_BALANCE: False, K.IMPORT_FINISHED: True}
    assert prefs.large_transaction_threshold == 500
    store.update_preferences(uid, {}, None, T0)
    assert store.get_preferences(uid).large_transaction_threshold is None
