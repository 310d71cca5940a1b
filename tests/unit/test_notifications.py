"""Notifications on fakes: preferences and their defaults, idempotent delivery (store once,
push once, email once), at-least-once email, the inbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from tests.fakes.notifications import FakeMailer, FakePublisher, InMemoryNotificationStore
from tests.unit.conftest import World
from valorize.domain.errors import NotFound, Unavailable, ValidationFailed
from valorize.domain.notifications import (
    EMAIL_BY_DEFAULT,
    UNSET,
    Notification,
    NotificationKind,
    NotificationPreferences,
    NotificationRequest,
)
from valorize.entrypoints.notification_schemas import NotificationOut
from valorize.service.notifications import EMAIL_LEASE, NotificationService, compose_email
from valorize.service.requests import Register

K = NotificationKind


@dataclass
class Inbox:
    world: World
    store: InMemoryNotificationStore
    mailer: FakeMailer
    publisher: FakePublisher
    service: NotificationService
    user_id: str
    changed: list[str]

    def request(self, id: str = "n1", kind: K = K.IMPORT_FAILED) -> NotificationRequest:
        return NotificationRequest(self.user_id, id, kind, f"Title {id}", f"Body {id}", {"x": 1})


@pytest.fixture
def inbox(world: World) -> Inbox:
    user, _ = world.auth.register(
        Register(
            email="ana@example.com",
            password="a long password",
            name="Ana",
            preferred_currency="BRL",
        )
    )
    return Inbox(
        world,
        world.notification_store,
        world.mailer,
        world.realtime,
        world.notifications,
        user.id,
        # What the service tells the alert profiles (DirectProfiles records it).
        world.alert_profiles.forgotten,
    )


# --- preferences ------------------------------------------------------------------------------


def test_default_email_choices() -> None:
    prefs = NotificationPreferences()
    assert {k for k, on in prefs.email_choices().items() if on} == {
        K.IMPORT_FAILED,
        K.ENVELOPE_OVERSPENT,
        K.LOW_BALANCE,
    }
    assert {K.IMPORT_FAILED, K.ENVELOPE_OVERSPENT, K.LOW_BALANCE} == EMAIL_BY_DEFAULT
    assert prefs.large_transaction_threshold is None


def test_changes_keep_what_was_not_given() -> None:
    prefs = NotificationPreferences().changed({K.LOW_BALANCE: False}, 50_000)
    prefs = prefs.changed({K.IMPORT_FINISHED: True})
    assert not prefs.emails(K.LOW_BALANCE)
    assert prefs.emails(K.IMPORT_FINISHED)
    assert prefs.emails(K.IMPORT_FAILED)  # never touched: the default
    assert prefs.large_transaction_threshold == 50_000
    assert prefs.changed(threshold=None).large_transaction_threshold is None
    assert prefs.changed(threshold=UNSET).large_transaction_threshold == 50_000


def test_update_preferences_answers_the_result_and_invalidates_alerts(inbox: Inbox) -> None:
    prefs, currency = inbox.service.update_preferences(
        inbox.user_id, {K.LARGE_TRANSACTION: True}, 100_000
    )
    assert currency == "BRL"
    assert prefs.emails(K.LARGE_TRANSACTION) and prefs.large_transaction_threshold == 100_000
    assert inbox.changed == [inbox.user_id]
    prefs, _ = inbox.service.update_preferences(inbox.user_id, threshold=None)
    assert prefs.large_transaction_threshold is None and prefs.emails(K.LARGE_TRANSACTION)


@pytest.mark.parametrize("threshold", [0, -5])
def test_threshold_must_be_positive(inbox: Inbox, threshold: int) -> None:
    with pytest.raises(ValidationFailed) as e:
        inbox.service.update_preferences(inbox.user_id, threshold=threshold)
    assert e.value.errors[0].field == "large_transaction_threshold"


# --- delivery ---------------------------------------------------------------------------------


def test_delivery_stores_pushes_and_emails_once(inbox: Inbox) -> None:
    first = inbox.service.deliver(inbox.request())
    assert (first.stored, first.pushed, first.emailed) == (True, True, True)
    (event,) = inbox.publisher.events
    stored = inbox.store.get_notification(inbox.user_id, "n1")
    assert stored is not None and stored.emailed_at is not None
    assert event == (
        inbox.user_id,
        "notification.created",
        NotificationOut.of(stored).model_dump(mode="json"),
    )
    (mail,) = inbox.mailer.sent
    assert mail.to == "ana@example.com" and mail.subject == "Title n1"
    assert "Body n1" in mail.text and "<h2>Title n1</h2>" in mail.html

    again = inbox.service.deliver(inbox.request())
    assert (again.stored, again.pushed, again.emailed) == (False, False, False)
    assert len(inbox.publisher.events) == 1 and len(inbox.mailer.sent) == 1
    assert inbox.service.unread_count(inbox.user_id) == 1


def test_kinds_off_by_default_are_not_emailed_until_chosen(inbox: Inbox) -> None:
    assert not inbox.service.deliver(inbox.request("a", K.IMPORT_FINISHED)).emailed
    inbox.service.update_preferences(inbox.user_id, {K.IMPORT_FINISHED: True})
    assert inbox.service.deliver(inbox.request("b", K.IMPORT_FINISHED)).emailed
    inbox.service.update_preferences(inbox.user_id, {K.IMPORT_FAILED: False})
    assert not inbox.service.deliver(inbox.request("c", K.IMPORT_FAILED)).emailed
    assert [m.subject for m in inbox.mailer.sent] == ["Title b"]


def test_a_mail_outage_is_retried_and_then_emails_once(inbox: Inbox) -> None:
    inbox.mailer.fail_with = ConnectionRefusedError("smtp down")
    with pytest.raises(Unavailable):
        inbox.service.deliver(inbox.request())
    # Stored and pushed on the first try; the retry only emails.
    assert len(inbox.publisher.events) == 1 and not inbox.mailer.sent
    retry = inbox.service.deliver(inbox.request())
    assert (retry.stored, retry.pushed, retry.emailed) == (False, False, True)
    assert len(inbox.mailer.sent) == 1


def test_a_concurrent_delivery_holding_the_claim_makes_this_one_retry(inbox: Inbox) -> None:
    inbox.service.update_preferences(inbox.user_id, {K.IMPORT_FAILED: False})
    inbox.service.deliver(inbox.request())  # stored, not emailed
    inbox.service.update_preferences(inbox.user_id, {K.IMPORT_FAILED: True})
    now = inbox.world.clock.now()
    assert inbox.store.claim_email(inbox.user_id, "n1", now, EMAIL_LEASE).value == "claimed"
    with pytest.raises(Unavailable):
        inbox.service.deliver(inbox.request())
    # The holder died without recording anything: after the lease another delivery sends.
    inbox.world.clock.advance(EMAIL_LEASE + timedelta(seconds=1))
    assert inbox.service.deliver(inbox.request()).emailed
    assert len(inbox.mailer.sent) == 1


def test_email_is_at_least_once_when_a_delivery_dies_after_sending(inbox: Inbox) -> None:
    class DiesAfterSending(Exception):
        pass

    store = inbox.store
    original = store.finish_email

    def crash(user_id: str, notification_id: str, sent_at: object) -> None:
        raise DiesAfterSending

    store.finish_email = crash  # type: ignore[method-assign,assignment]
    with pytest.raises(DiesAfterSending):
        inbox.service.deliver(inbox.request())
    store.finish_email = original  # type: ignore[method-assign]
    store.stored(inbox.user_id)["n1"].claimed_at = None  # the lease ran out
    assert inbox.service.deliver(inbox.request()).emailed
    first, second = inbox.mailer.sent
    # The repeat is recognisably the same message.
    assert first.message_key == second.message_key


def test_no_mailer_means_stored_and_pushed_only(inbox: Inbox) -> None:
    inbox.service.mailer = None
    d = inbox.service.deliver(inbox.request())
    assert (d.stored, d.pushed, d.emailed) == (True, True, False)


def test_a_realtime_outage_is_retried_and_then_pushes_once(inbox: Inbox) -> None:
    """Found by the queue drain (load/drain.py): a push that failed was never made again, as
    the retry found the notification stored and only pushed what it stored itself."""
    inbox.publisher.up = False
    with pytest.raises(Unavailable):
        inbox.service.deliver(inbox.request())
    # Stored and emailed on the first try; the push is what the retry is for.
    assert inbox.store.get_notification(inbox.user_id, "n1") is not None
    assert len(inbox.mailer.sent) == 1 and not inbox.publisher.events
    inbox.publisher.up = True
    retry = inbox.service.deliver(inbox.request())
    assert (retry.stored, retry.pushed, retry.emailed) == (False, True, False)
    again = inbox.service.deliver(inbox.request())
    assert (again.stored, again.pushed, again.emailed) == (False, False, False)
    assert len(inbox.publisher.events) == 1 and len(inbox.mailer.sent) == 1


def test_a_mail_outage_does_not_hold_back_the_push(inbox: Inbox) -> None:
    inbox.mailer.fail_with = ConnectionRefusedError("smtp down")
    inbox.publisher.up = False
    with pytest.raises(Unavailable):
        inbox.service.deliver(inbox.request())
    inbox.publisher.up = True
    with pytest.raises(Unavailable):  # the mail server is still down for this one
        inbox.mailer.fail_with = ConnectionRefusedError("smtp down")
        inbox.service.deliver(inbox.request())
    assert len(inbox.publisher.events) == 1 and not inbox.mailer.sent
    assert inbox.service.deliver(inbox.request()).emailed
    assert len(inbox.publisher.events) == 1 and len(inbox.mailer.sent) == 1


def test_a_missing_user_is_dropped_not_retried(inbox: Inbox) -> None:
    d = inbox.service.deliver(NotificationRequest("nobody", "n1", K.LOW_BALANCE, "t", "b", {}))
    assert d.dropped and not d.stored and not inbox.mailer.sent


def test_message_id_differs_per_user_and_notification(inbox: Inbox) -> None:
    user = inbox.world.user_store.get_user(inbox.user_id)
    assert user is not None
    n = Notification.stored(inbox.request(), inbox.world.clock.now())
    other = Notification.stored(inbox.request("n2"), inbox.world.clock.now())
    key = compose_email(user, n).message_key
    assert key.startswith("n1.") and key != compose_email(user, other).message_key
    assert inbox.user_id not in key


def test_html_is_escaped(inbox: Inbox) -> None:
    user = inbox.world.user_store.get_user(inbox.user_id)
    assert user is not None
    n = Notification.stored(
        NotificationRequest(inbox.user_id, "x", K.IMPORT_FAILED, "<b>hi</b>", "a & b", {}),
        inbox.world.clock.now(),
    )
    page = compose_email(user, n).html
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "a &amp; b" in page


# --- the inbox --------------------------------------------------------------------------------


def test_inbox_newest_first_with_unread_filter_and_cursor(inbox: Inbox) -> None:
    for i in range(5):
        inbox.service.deliver(inbox.request(f"n{i}", K.IMPORT_FINISHED))
        inbox.world.clock.advance(timedelta(seconds=1))
    page = inbox.service.list(inbox.user_id, False, 2, None)
    assert [n.id for n in page.items] == ["n4", "n3"] and page.next_cursor
    rest = inbox.service.list(inbox.user_id, False, 10, page.next_cursor)
    assert [n.id for n in rest.items] == ["n2", "n1", "n0"] and rest.next_cursor is None

    read = inbox.service.mark_read(inbox.user_id, "n3")
    assert read.read and read.read_at == inbox.world.clock.now()
    inbox.world.clock.advance(timedelta(seconds=1))
    # Reading again keeps the first read_at.
    assert inbox.service.mark_read(inbox.user_id, "n3").read_at == read.read_at
    unread = inbox.service.list(inbox.user_id, True, 10, None)
    assert [n.id for n in unread.items] == ["n4", "n2", "n1", "n0"]
    assert inbox.service.unread_count(inbox.user_id) == 4

    assert inbox.service.mark_all_read(inbox.user_id) == 0
    assert inbox.service.list(inbox.user_id, True, 10, None).items == []
    with pytest.raises(NotFound):
        inbox.service.mark_read(inbox.user_id, "nope")


def test_another_users_notifications_are_invisible(inbox: Inbox) -> None:
    inbox.service.deliver(inbox.request())
    assert inbox.service.list("someone-else", False, 10, None).items == []
    with pytest.raises(NotFound):
        inbox.service.mark_read("someone-else", "n1")
