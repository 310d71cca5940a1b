"""Alert decisions (pure) and the alert handlers on the message bus, with fakes: what fires,
once, and that nothing is read when nothing is watched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.notifications import DirectProfiles, InMemoryNotificationStore
from tests.fakes.tasks import FakeNotifier
from tests.unit.conftest import World, make_world
from valorize.domain import alerts
from valorize.domain.alerts import AlertProfile
from valorize.domain.events import BalancesChanged
from valorize.domain.model import Account, AccountType, Split, Transaction
from valorize.domain.notifications import NotificationKind, NotificationPreferences
from valorize.service.accounts import AccountService
from valorize.service.alerts import Alerts
from valorize.service.budgets import BudgetService
from valorize.service.messagebus import MessageBus
from valorize.service.requests import (
    CreateAccount,
    CreateTransaction,
    Register,
    UpdateAccount,
    UpdateTransaction,
)
from valorize.service.requests.budgets import Allocate, CreateBudget
from valorize.service.transactions import TransactionService

K = NotificationKind


# --- pure decisions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "balance", "delta", "fires"),
    [
        (5_000, 4_000, -6_000, True),  # 10,000 -> 4,000
        (5_000, 4_999, -1, True),  # 5,000 -> 4,999: at the threshold is not below
        (5_000, 5_000, -1_000, False),  # lands exactly on it
        (5_000, 3_000, -1_000, False),  # was below already
        (5_000, 4_000, 1_000, False),  # a deposit that leaves it below
        (5_000, 6_000, -1_000, False),  # still above
        (5_000, 4_000, None, True),  # delta unknown: below after a change
        (5_000, 6_000, None, False),
        (-10_000, -12_000, -5_000, True),  # credit cards: negative thresholds work the same
    ],
)
def test_crossed_below(threshold: int, balance: int, delta: int | None, fires: bool) -> None:
    assert alerts.crossed_below(threshold, balance, delta) is fires


NOW = datetime(2025, 3, 1, tzinfo=UTC)


def _txn(amount: int, **over: Any) -> Transaction:
    base: dict[str, Any] = {
        "id": "t1",
        "account_id": "a1",
        "amount": amount,
        "currency": "BRL",
        "date": date(2025, 3, 10),
        "description": "Rent",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Transaction(**{**base, **over})


def test_is_large_compares_magnitudes_in_the_preferred_currency() -> None:
    assert alerts.is_large(_txn(-100_000), 100_000, "BRL")
    assert alerts.is_large(_txn(250_000), 100_000, "BRL")  # money in counts too
    assert not alerts.is_large(_txn(-99_999), 100_000, "BRL")
    assert not alerts.is_large(_txn(-500_000, currency="USD"), 100_000, "BRL")
    assert not alerts.is_large(_txn(-500_000, transfer_id="x"), 100_000, "BRL")
    assert not alerts.is_large(_txn(-500_000), None, "BRL")


def test_spent_categories_are_the_negative_parts() -> None:
    assert alerts.spent_categories(_txn(-100, category_id="food")) == {"food"}
    assert alerts.spent_categories(_txn(100, category_id="salary")) == set()
    assert alerts.spent_categories(_txn(-100)) == set()
    split = _txn(-100, splits=(Split("food", -150), Split("refund", 50)))
    assert alerts.spent_categories(split) == {"food"}
    profile = AlertProfile(currency="BRL", budgeted=frozenset({"food", "fun"}))
    assert alerts.overspent_candidates(split, profile) == ["food"]
    assert alerts.overspent_candidates(replace(split, currency="USD"), profile) == []


def test_ids_are_deterministic_per_cause() -> None:
    acc = Account("a1", "Checking", AccountType.CHECKING, "BRL", 0, 4_000, NOW, NOW)
    day = date(2025, 3, 10)
    assert alerts.low_balance("u", acc, 5_000, day).id == "lowbal-a1-2025-03-10"
    assert alerts.large_transaction("u", _txn(-1), 1).id == "large-t1"
    assert alerts.envelope_overspent("u", "b1", "Food", "2025-03", -1, "BRL").id == (
        "overspent-b1-2025-03"
    )


def test_money_is_formatted_with_the_currency_exponent() -> None:
    assert alerts.format_money(-123_456, "BRL") == "BRL -1,234.56"
    assert alerts.format_money(500, "JPY") == "JPY 500"


def test_profile_round_trips_through_json() -> None:
    p = AlertProfile("BRL", 10, {"a": -5}, frozenset({"c"}))
    assert AlertProfile.from_json(p.to_json()) == p
    assert AlertProfile().watches_nothing and AlertProfile("BRL").watches_nothing
    assert not AlertProfile("BRL", budgeted=frozenset({"c"})).watches_nothing


# --- handlers on the bus ----------------------------------------------------------------------


class CountingStore:
    """The world's store, counting the account reads the alerts make."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.account_reads = 0

    def get_accounts(self, user_id: str, account_ids: Sequence[str]) -> dict[str, Account]:
        self.account_reads += 1
        return self.world.account_store.get_accounts(user_id, account_ids)


@dataclass
class Setup:
    user: str
    world: World
    notifier: FakeNotifier
    profiles: DirectProfiles
    reads: CountingStore
    envelope_reads: list[str]
    prefs: InMemoryNotificationStore
    accounts: AccountService
    transactions: TransactionService
    budgets: BudgetService

    def account(self, opening: int = 10_000, threshold: int | None = None) -> Account:
        return self.accounts.create(
            self.user,
            CreateAccount(
                name="Checking",
                type=AccountType.CHECKING,
                currency="BRL",
                opening_balance=opening,
                low_balance_threshold=threshold,
            ),
        )

    def txn(self, account_id: str, amount: int, **over: Any) -> Transaction:
        body: dict[str, Any] = {
            "account_id": account_id,
            "amount": amount,
            "date": date(2025, 3, 10),
            "description": "Spend",
            **over,
        }
        return self.transactions.create(self.user, CreateTransaction(**body))

    def fired(self, kind: K) -> list[str]:
        return [r.id for r in self.notifier.sent if r.kind == kind]


@pytest.fixture
def setup() -> Setup:
    # The alert handlers alone on the bus, reading accounts and envelopes through counters.
    bus = MessageBus()
    world = make_world(bus=bus)
    user, _ = world.auth.register(
        Register(
            email="a@example.com", password="a long password", name="A", preferred_currency="BRL"
        )
    )
    profiles = DirectProfiles(world.services.alert_profile)
    reads = CountingStore(world)
    envelope_reads: list[str] = []

    def envelope(uid: str, budget_id: str, month: str, currency: str) -> Any:
        envelope_reads.append(budget_id)
        return world.budgets.envelope(uid, budget_id, month, currency)

    Alerts(profiles, reads, envelope, world.notifier, world.clock).subscribe(bus)
    return Setup(
        user.id,
        world,
        world.notifier,
        profiles,
        reads,
        envelope_reads,
        world.notification_store,
        world.accounts,
        world.transactions,
        world.budgets,
    )


def test_nothing_watched_means_no_reads_and_no_alerts(setup: Setup) -> None:
    account = setup.account(opening=10_000)
    setup.txn(account.id, -9_000_000)
    assert setup.notifier.sent == []
    assert setup.reads.account_reads == 0 and setup.envelope_reads == []


def test_low_balance_fires_on_the_crossing_once_a_day(setup: Setup) -> None:
    account = setup.account(opening=10_000, threshold=5_000)
    setup.txn(account.id, -3_000)  # 7,000: above
    assert setup.fired(K.LOW_BALANCE) == []
    setup.txn(account.id, -3_000)  # 4,000: crossed
    today = setup.world.clock.now().date().isoformat()
    assert setup.fired(K.LOW_BALANCE) == [f"lowbal-{account.id}-{today}"]
    request = setup.notifier.sent[-1]
    assert request.data["balance"] == {"amount": 4_000, "currency": "BRL"}
    assert request.data["threshold"] == {"amount": 5_000, "currency": "BRL"}
    setup.txn(account.id, -1_000)  # still below: no crossing
    setup.txn(account.id, 2_000)  # a deposit that leaves it below
    assert len(setup.fired(K.LOW_BALANCE)) == 1
    setup.txn(account.id, 5_000)  # 10,000: above again
    setup.txn(account.id, -6_000)  # crosses again the same day: the same id
    assert setup.fired(K.LOW_BALANCE) == [f"lowbal-{account.id}-{today}"] * 2
    setup.world.clock.advance(timedelta(days=1))
    setup.txn(account.id, 6_000)
    setup.txn(account.id, -6_000)  # another day, another notification
    tomorrow = setup.world.clock.now().date().isoformat()
    assert setup.fired(K.LOW_BALANCE)[-1] == f"lowbal-{account.id}-{tomorrow}"


def test_low_balance_threshold_can_be_set_and_cleared(setup: Setup) -> None:
    account = setup.account(opening=10_000)
    setup.accounts.update(setup.user, account.id, UpdateAccount(low_balance_threshold=8_000))
    assert setup.user in setup.profiles.forgotten  # account changes rebuild the profile
    setup.txn(account.id, -3_000)
    assert len(setup.fired(K.LOW_BALANCE)) == 1
    setup.accounts.update(setup.user, account.id, UpdateAccount(low_balance_threshold=None))
    setup.txn(account.id, 5_000)
    reads = setup.reads.account_reads
    setup.txn(account.id, -5_000)
    assert len(setup.fired(K.LOW_BALANCE)) == 1 and setup.reads.account_reads == reads


def test_a_watched_account_is_read_only_when_it_crosses(setup: Setup) -> None:
    """A create's event carries the balance its commit left: the threshold is in the profile,
    so only a crossing (whose notification names the account) reads it."""
    watched = setup.account(opening=10_000, threshold=5_000)
    plain = setup.account()
    setup.txn(plain.id, -100)
    setup.txn(watched.id, -100)  # 9,900: above, nothing read
    assert setup.reads.account_reads == 0
    setup.txn(watched.id, -6_000)  # 3,900: crossed
    assert setup.reads.account_reads == 1
    assert len(setup.fired(K.LOW_BALANCE)) == 1
    assert setup.notifier.sent[-1].data["balance"] == {"amount": 3_900, "currency": "BRL"}


def test_without_the_balance_a_watched_account_is_read(setup: Setup) -> None:
    watched = setup.account(opening=10_000, threshold=5_000)
    clock = setup.world.clock
    handler = Alerts(setup.profiles, setup.reads, lambda *a: None, setup.notifier, clock)
    handler.on_balances(BalancesChanged(setup.user, (watched.id,), ((watched.id, -100),)))
    assert setup.reads.account_reads == 1 and setup.notifier.sent == []


def test_an_unknown_delta_still_alerts_below_threshold(setup: Setup) -> None:
    account = setup.account(opening=1_000, threshold=5_000)
    bus_event = BalancesChanged(setup.user, (account.id,))
    alerts_handler = Alerts(
        setup.profiles, setup.reads, lambda *a: None, setup.notifier, setup.world.clock
    )
    alerts_handler.on_balances(bus_event)
    assert len(setup.fired(K.LOW_BALANCE)) == 1
    assert bus_event.delta(account.id) is None
    assert BalancesChanged(setup.user, ("a",), (("a", -5), ("a", 2))).delta("a") == -3


def test_large_transaction_fires_per_transaction(setup: Setup) -> None:
    account = setup.account()
    setup.prefs.update_preferences(setup.user, {}, 100_000, setup.world.clock.now())
    small = setup.txn(account.id, -99_999)
    big = setup.txn(account.id, -100_000)
    income = setup.txn(account.id, 250_000)
    assert setup.fired(K.LARGE_TRANSACTION) == [f"large-{big.id}", f"large-{income.id}"]
    assert small.id not in " ".join(setup.fired(K.LARGE_TRANSACTION))
    # Editing a transaction is not a new large one.
    setup.transactions.update(setup.user, small.id, UpdateTransaction(amount=-500_000))
    assert len(setup.fired(K.LARGE_TRANSACTION)) == 2


def test_overspent_envelope_fires_once_per_month(setup: Setup) -> None:
    world = setup.world
    account = setup.account(opening=1_000_000)
    food = world.category(setup.user, "Groceries")
    budget, _ = setup.budgets.create(setup.user, CreateBudget(category_id=food.id))
    setup.budgets.allocate(
        setup.user,
        Allocate.model_validate(
            {
                "budget_id": budget.id,
                "month": "2025-03",
                "amount": {"amount": 10_000, "currency": "BRL"},
            }
        ),
    )
    assert setup.user in setup.profiles.forgotten
    setup.txn(account.id, -6_000, category_id=food.id)
    assert setup.fired(K.ENVELOPE_OVERSPENT) == []
    setup.txn(account.id, -5_000, category_id=food.id)  # available -1,000
    assert setup.fired(K.ENVELOPE_OVERSPENT) == [f"overspent-{budget.id}-2025-03"]
    request = setup.notifier.sent[-1]
    assert request.data["available"] == {"amount": -1_000, "currency": "BRL"}
    setup.txn(account.id, -100, category_id=food.id)  # still overspent: the same id
    assert set(setup.fired(K.ENVELOPE_OVERSPENT)) == {f"overspent-{budget.id}-2025-03"}
    # Another month has its own envelope month: April has nothing budgeted, so it is
    # overspent at once (rollover from March is negative too).
    setup.txn(account.id, -100, category_id=food.id, date=date(2025, 4, 2))
    assert setup.fired(K.ENVELOPE_OVERSPENT)[-1] == f"overspent-{budget.id}-2025-04"


def test_spending_outside_envelopes_reads_no_envelope(setup: Setup) -> None:
    world = setup.world
    account = setup.account()
    food = world.category(setup.user, "Groceries")
    other = world.category(setup.user, "Fun")
    setup.budgets.create(setup.user, CreateBudget(category_id=food.id))
    setup.txn(account.id, -100, category_id=other.id)
    setup.txn(account.id, 100, category_id=food.id)  # income in the category: not spending
    assert setup.envelope_reads == []
    setup.txn(account.id, -100, category_id=food.id)
    assert setup.envelope_reads == [food.id]


def test_a_failing_notifier_never_fails_the_write(setup: Setup) -> None:
    account = setup.account(opening=10_000, threshold=5_000)

    def boom(_: object) -> None:
        raise ConnectionError("tasks down")

    setup.notifier.notify = boom  # type: ignore[method-assign,assignment]
    txn = setup.txn(account.id, -9_000)
    assert setup.world.ledger.get_transaction(setup.user, txn.id) is not None


def test_build_profile_collects_every_source(setup: Setup) -> None:
    a = setup.account(threshold=-500)
    setup.account()
    cat = setup.world.category(setup.user, "Groceries")
    setup.budgets.create(setup.user, CreateBudget(category_id=cat.id))
    setup.prefs.update_preferences(setup.user, {}, 7, setup.world.clock.now())
    profile = setup.profiles.get(setup.user)
    assert profile == AlertProfile("BRL", 7, {a.id: -500}, frozenset({cat.id}))
    assert setup.profiles.build("nobody") == AlertProfile()
    assert NotificationPreferences().large_transaction_threshold is None
