"""The safe range of balances and read-model sums (domain/limits.py): the arithmetic at the
boundary, and every ledger write of the services over the in-memory store, checked against a
brute-force oracle (the same write applied without the check, then every balance and every
counter of every month inspected)."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fakes
from tests.unit.conftest import USER, World, make_world
from valorize.domain.errors import DomainError
from valorize.domain.limits import (
    SAFE_MAX,
    LedgerReach,
    OutOfSafeRange,
    Reach,
    beyond,
    bounds_the_read_model,
    check,
)
from valorize.domain.readmodel import recompute
from valorize.service.requests import UpdateAccount, UpdateTransaction

MAX = SAFE_MAX


# --- the arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "reach", "expected"),
    [
        (MAX - 1, Reach.of(1), None),
        (MAX, Reach.of(1), MAX + 1),
        (MAX, Reach.of(0), None),
        (-MAX + 1, Reach.of(-1), None),
        (-MAX, Reach.of(-1), -MAX - 1),
        (0, Reach(-MAX, MAX), None),
        (1, Reach(-MAX, MAX), MAX + 1),
        (-1, Reach(-MAX, MAX), -MAX - 1),
        # Already outside (a race): back toward zero is allowed, further out is not.
        (MAX + 5, Reach.of(-1), None),
        (MAX + 5, Reach.of(1), MAX + 6),
        (-MAX - 5, Reach.of(2), None),
    ],
)
def test_beyond_at_the_boundary(current: int, reach: Reach, expected: int | None) -> None:
    assert beyond(current, reach) == expected


def test_only_the_all_time_sums_bound_the_read_model() -> None:
    assert bounds_the_read_model(("BRL", "income"))
    assert bounds_the_read_model(("BRL", "expense"))
    assert bounds_the_read_model(("BRL", "accounts", "a1", "transfers_in"))
    assert not bounds_the_read_model(("BRL", "accounts", "a1", "income"))
    assert not bounds_the_read_model(("BRL", "categories", "c1", "income"))
    reach = LedgerReach.of(
        {"a1": 5, "a2": 0},
        {
            "2025-01": {("BRL", "income"): 5, ("BRL", "categories", "c1", "income"): 5},
            "2025-02": {("BRL", "income"): -2, ("BRL", "expense"): 3},
        },
    )
    assert reach.balances == {"a1": Reach(0, 5)}
    assert reach.sums == {("BRL", "income"): Reach(0, 3), ("BRL", "expense"): Reach(0, 3)}


def test_the_refusal_names_the_limit_and_the_field() -> None:
    reach = LedgerReach({"a1": Reach.of(1)})
    with pytest.raises(OutOfSafeRange) as error:
        check(reach, {"a1": ("Checking", MAX)}, {}, "opening_balance")
    assert error.value.status == 422
    assert error.value.extensions == {"limit": MAX}
    assert [e.field for e in error.value.errors] == ["opening_balance"]
    assert "Checking" in error.value.detail and "2^53-1" in error.value.detail
    totals = {"USD": {"income": MAX - 1}}
    check(LedgerReach(sums={("USD", "income"): Reach.of(1)}), {}, totals)
    with pytest.raises(OutOfSafeRange, match="USD income"):
        check(LedgerReach(sums={("USD", "income"): Reach.of(2)}), {}, totals)


# --- every write of the services, against a brute-force oracle -------------------------------

AMOUNTS = st.sampled_from([MAX, -MAX, MAX // 2, -(MAX // 2), MAX - 1, 1, -1, 1000])
ACCOUNT = st.integers(0, 2)
DAY = st.sampled_from([date(2025, 1, 10), date(2025, 2, 10)])
OPS = st.one_of(
    st.tuples(st.just("create"), ACCOUNT, AMOUNTS, DAY),
    st.tuples(st.just("split"), ACCOUNT, AMOUNTS, AMOUNTS),
    st.tuples(st.just("transfer"), ACCOUNT, ACCOUNT, AMOUNTS),
    st.tuples(st.just("amount"), st.integers(0, 50), AMOUNTS),
    st.tuples(st.just("date"), st.integers(0, 50), DAY),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("opening"), ACCOUNT, AMOUNTS),
)


def apply(world: World, op: tuple[Any, ...], accounts: list[str], food: str, rent: str) -> None:
    kind = op[0]
    txns = sorted(world.memory.space(USER).transactions)
    if kind == "create":
        world.txn(accounts[op[1]], op[2], on=op[3])
    elif kind == "split":
        total = op[2] + op[3]
        if total == 0 or abs(total) > MAX:
            return
        world.txn(accounts[op[1]], total, splits=[(food, op[2]), (rent, op[3])])
    elif kind == "transfer":
        if op[1] != op[2]:
            world.transfer(accounts[op[1]], accounts[op[2]], abs(op[3]))
    elif kind in ("amount", "date", "delete") and txns:
        target = txns[op[1] % len(txns)]
        if kind == "delete":
            world.transactions.delete(USER, target)
            return
        t = world.memory.space(USER).transactions[target]
        if kind == "amount" and (t.is_transfer or t.splits):
            return
        change = {"amount": op[2]} if kind == "amount" else {"date": op[2]}
        world.transactions.update(USER, target, UpdateTransaction(**change))
    elif kind == "opening":
        world.accounts.update(USER, accounts[op[1]], UpdateAccount(opening_balance=op[2]))


def in_range(world: World) -> bool:
    space = world.memory.space(USER)
    if any(abs(a.balance) > MAX for a in space.accounts.values()):
        return False

    def counters(node: Any) -> list[int]:
        if isinstance(node, dict | list):
            children = node.values() if isinstance(node, dict) else node
            return [v for child in children for v in counters(child)]
        return [node]

    # Every month's counters, and the all-time ones (users/{uid}/totals/all).
    model = recompute(space.transactions.values())
    return all(abs(v) <= MAX for v in counters([model, world.ledger.get_totals(USER)]))


def unchecked(world: World) -> World:
    """A copy of the world whose stores check nothing."""
    memory = copy.deepcopy(world.memory)
    memory.check_limits = lambda *_a, **_k: None  # type: ignore[method-assign]
    return make_world(clock=world.clock, ids=copy.deepcopy(world.ids), **fakes.stores(memory))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=30))
def test_a_write_is_refused_exactly_when_it_would_leave_the_safe_range(
    ops: list[tuple[Any, ...]],
) -> None:
    world = make_world()
    accounts = [world.account(name=f"A{i}").id for i in range(3)]
    food, rent = world.category("Food").id, world.category("Rent").id
    for op in ops:
        twin = unchecked(world)
        try:
            apply(twin, op, accounts, food, rent)
        except OutOfSafeRange:  # pragma: no cover - the twin checks nothing
            raise AssertionError("the unchecked twin refused") from None
        except (DomainError, ValueError):  # refused for another reason (validation): skip it
            continue
        should_pass = in_range(twin)
        before = copy.deepcopy(world.memory.spaces)
        try:
            apply(world, op, accounts, food, rent)
        except OutOfSafeRange:
            assert not should_pass, op
            assert world.memory.spaces == before  # nothing half-written
        else:
            assert should_pass, op
        assert in_range(world)
