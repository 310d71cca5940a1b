"""Accounts carry an optional low-balance threshold; balance events say how much each
balance moved (the low-balance alert tells a crossing from a dip already below by it)."""

from __future__ import annotations

from datetime import date

from tests.unit.conftest import USER, World, make_world
from valorize.domain.events import BalancesChanged, Event
from valorize.domain.model import AccountType
from valorize.service.requests import (
    CreateAccount,
    CreateTransaction,
    CreateTransfer,
    UpdateAccount,
    UpdateTransaction,
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def balances(self) -> list[tuple[tuple[str, int], ...]]:
        found = [e.deltas for e in self.events if isinstance(e, BalancesChanged)]
        self.events.clear()
        return found


def test_the_threshold_is_optional_and_can_be_cleared(world: World) -> None:
    plain = world.account()
    assert plain.low_balance_threshold is None
    cmd = CreateAccount(
        name="Card", type=AccountType.CREDIT, currency="BRL", low_balance_threshold=-50_000
    )
    card = world.accounts.create(USER, cmd)
    assert world.accounts.get(USER, card.id).low_balance_threshold == -50_000
    updated = world.accounts.update(USER, card.id, UpdateAccount(low_balance_threshold=None))
    assert updated.low_balance_threshold is None
    renamed = world.accounts.update(USER, plain.id, UpdateAccount(name="Main"))
    assert renamed.low_balance_threshold is None


def test_balance_events_carry_the_deltas() -> None:
    bus = Recorder()
    world = make_world(bus=bus)
    accounts, txns = world.accounts, world.transactions
    a = accounts.create(USER, CreateAccount(name="A", type=AccountType.CHECKING, currency="BRL"))
    b = accounts.create(USER, CreateAccount(name="B", type=AccountType.CHECKING, currency="BRL"))
    bus.balances()
    on = date(2024, 1, 10)
    t = txns.create(USER, CreateTransaction(account_id=a.id, amount=-500, date=on, description="x"))
    assert bus.balances() == [((a.id, -500),)]
    txns.update(USER, t.id, UpdateTransaction(amount=-800))
    assert bus.balances() == [((a.id, -300),)]
    txns.update(USER, t.id, UpdateTransaction(description="renamed"))
    assert bus.balances() == []  # no balance moved
    txns.delete(USER, t.id)
    assert bus.balances() == [((a.id, 800),)]
    txns.transfer(
        USER,
        CreateTransfer(
            from_account_id=a.id, to_account_id=b.id, amount=1_000, date=on, description="m"
        ),
    )
    assert bus.balances() == [((a.id, -1_000), (b.id, 1_000))]
    event = BalancesChanged(USER, (a.id,))
    assert event.delta(a.id) is None  # a writer that does not say
