"""Property-based tests: whatever sequence of writes happens, the ledger stays consistent."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.unit.conftest import USER, World, make_world
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.model import Transaction
from valorize.service.requests import UpdateAccount, UpdateTransaction

FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
amounts = st.integers(min_value=-(10**12), max_value=10**12)
nonzero = amounts.filter(bool)
days = st.integers(min_value=1, max_value=28).map(lambda d: date(2024, 1, d))
picks = st.integers(min_value=0, max_value=10**6)


class Ledger(RuleBasedStateMachine):
    """Random creates, edits and deletes of transactions, splits and transfers, interleaved
    with opening-balance edits and account deletions."""

    def __init__(self) -> None:
        super().__init__()
        self.w: World = make_world()
        self.live: list[str] = []
        self.cats: list[str] = []

    @initialize(openings=st.lists(amounts, min_size=2, max_size=3))
    def open_accounts(self, openings: list[int]) -> None:
        self.live = [self.w.account(opening=o, name=f"A{i}").id for i, o in enumerate(openings)]
        self.cats = [self.w.category(name=n).id for n in ("Food", "Rent", "Fun")]

    # --- helpers ------------------------------------------------------------------------------

    def txns(self) -> list[Transaction]:
        space = self.w.memory.spaces[USER]
        return sorted(space.transactions.values(), key=lambda t: t.id)

    def pick_txn(self, pick: int) -> Transaction:
        found = self.txns()
        return found[pick % len(found)]

    def has_txns(self) -> bool:
        return bool(self.w.memory.spaces[USER].transactions)

    def has_accounts(self) -> bool:
        return bool(self.live)

    # --- rules --------------------------------------------------------------------------------

    @rule()
    def open_account(self) -> None:
        self.live.append(self.w.account(name=f"N{len(self.live)}").id)

    @precondition(has_accounts)
    @rule(pick=picks, amount=amounts, on=days)
    def create(self, pick: int, amount: int, on: date) -> None:
        account = self.live[pick % len(self.live)]
        t = self.w.txn(account, amount, on=on, category_id=self.cats[pick % 3])
        assert t.type.value == ("debit" if amount < 0 else "credit")

    @precondition(has_accounts)
    @rule(pick=picks, parts=st.lists(nonzero, min_size=2, max_size=4), off=st.integers(-2, 2))
    def create_split(self, pick: int, parts: list[int], off: int) -> None:
        account = self.live[pick % len(self.live)]
        splits = [(self.cats[i % 3], p) for i, p in enumerate(parts)]
        amount = sum(parts) + off
        if off == 0:
            assert self.w.txn(account, amount, splits=splits).splits
        else:
            with pytest.raises(ValidationFailed):
                self.w.txn(account, amount, splits=splits)

    @precondition(has_accounts)
    @rule(src=picks, dst=picks, amount=st.integers(min_value=1, max_value=10**12), on=days)
    def transfer(self, src: int, dst: int, amount: int, on: date) -> None:
        a, b = self.live[src % len(self.live)], self.live[dst % len(self.live)]
        if a == b:
            with pytest.raises(ValidationFailed):
                self.w.transfer(a, b, amount, on=on)
        else:
            out, into = self.w.transfer(a, b, amount, on=on)
            assert out.amount == -into.amount == -amount

    @precondition(has_txns)
    @rule(pick=picks, amount=amounts)
    def update_amount(self, pick: int, amount: int) -> None:
        t = self.pick_txn(pick)
        flips = t.is_transfer and (amount == 0 or (amount > 0) != (t.amount > 0))
        breaks_splits = bool(t.splits) and amount != t.amount
        cmd = UpdateTransaction(amount=amount)
        if flips or breaks_splits:
            with pytest.raises(ValidationFailed):
                self.w.transactions.update(USER, t.id, cmd)
        else:
            assert self.w.transactions.update(USER, t.id, cmd).amount == amount

    @precondition(has_txns)
    @rule(pick=picks, parts=st.lists(nonzero, min_size=2, max_size=3))
    def resplit(self, pick: int, parts: list[int]) -> None:
        t = self.pick_txn(pick)
        cmd = UpdateTransaction.model_validate(
            {
                "amount": sum(parts),
                "category_id": None,
                "splits": [
                    {"category_id": self.cats[i % 3], "amount": p} for i, p in enumerate(parts)
                ],
            }
        )
        if t.is_transfer:
            with pytest.raises(ValidationFailed):
                self.w.transactions.update(USER, t.id, cmd)
        else:
            assert self.w.transactions.update(USER, t.id, cmd).amount == sum(parts)

    @precondition(has_txns)
    @rule(pick=picks, on=days)
    def move_date(self, pick: int, on: date) -> None:
        t = self.pick_txn(pick)
        self.w.transactions.update(USER, t.id, UpdateTransaction(date=on, description="Moved"))

    @precondition(has_txns)
    @rule(pick=picks)
    def delete(self, pick: int) -> None:
        t = self.pick_txn(pick)
        self.w.transactions.delete(USER, t.id)
        with pytest.raises(NotFound):
            self.w.transactions.get(USER, t.id)
        if t.counterpart_id:
            with pytest.raises(NotFound):
                self.w.transactions.get(USER, t.counterpart_id)

    @precondition(has_accounts)
    @rule(pick=picks, opening=amounts)
    def set_opening(self, pick: int, opening: int) -> None:
        account = self.live[pick % len(self.live)]
        self.w.accounts.update(USER, account, UpdateAccount(opening_balance=opening))

    @precondition(has_accounts)
    @rule(pick=picks)
    def delete_account(self, pick: int) -> None:
        account = self.live.pop(pick % len(self.live))
        self.w.delete_account(account)
        assert all(t.account_id != account for t in self.txns())
        with pytest.raises(ValidationFailed):
            self.w.txn(account, -1)

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def balances_follow_transactions(self) -> None:
        txns = self.txns()
        sums: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        for t in txns:
            sums[t.account_id] += t.amount
            counts[t.account_id] += 1
        accounts = self.w.memory.spaces[USER].accounts
        assert set(accounts) == set(self.live)
        assert set(counts) <= set(accounts)  # no orphans
        for a in accounts.values():
            assert a.balance == a.opening_balance + sums[a.id], a
            assert a.transaction_count == counts[a.id], a

    @invariant()
    def transfers_stay_paired(self) -> None:
        by_id = {t.id: t for t in self.txns()}
        for t in by_id.values():
            assert t.type.value == ("debit" if t.amount < 0 else "credit")
            if t.splits:
                assert sum(s.amount for s in t.splits) == t.amount and t.category_id is None
            if t.counterpart_id is None:
                # Either never a transfer, or the side left when the other's account went.
                assert t.counterpart_account_id is None
                continue
            cp = by_id[t.counterpart_id]
            assert cp.counterpart_id == t.id and cp.transfer_id == t.transfer_id
            assert cp.amount == -t.amount and cp.date == t.date
            assert cp.description == t.description
            assert cp.account_id == t.counterpart_account_id != t.account_id


Ledger.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedger = Ledger.TestCase


@FAST
@given(amount=amounts, parts=st.lists(amounts, max_size=5), match=st.booleans())
def test_splits_accepted_iff_they_add_up(amount: int, parts: list[int], match: bool) -> None:
    if match:
        amount = sum(parts)
    w = make_world()
    account = w.account(opening=100)
    cats = [w.category(name=n).id for n in ("A", "B")]
    splits = [(cats[i % 2], p) for i, p in enumerate(parts)]
    # No parts at all is a plain transaction; otherwise two or more non-zero parts that add up.
    valid = not parts or (len(parts) >= 2 and all(parts) and sum(parts) == amount)
    if valid:
        t = w.txn(account.id, amount, splits=splits)
        assert [s.amount for s in t.splits] == parts
        assert w.balance(account.id) == 100 + amount
    else:
        with pytest.raises(ValidationFailed):
            w.txn(account.id, amount, splits=splits)
        assert w.balance(account.id) == 100
        assert w.accounts.get(USER, account.id).transaction_count == 0


@FAST
@given(amount=amounts, parts=st.lists(nonzero, min_size=2, max_size=5), delta=nonzero)
def test_splits_that_miss_by_any_amount_are_refused(
    amount: int, parts: list[int], delta: int
) -> None:
    w = make_world()
    account = w.account()
    cat = w.category().id
    splits = [(cat, p) for p in parts]
    with pytest.raises(ValidationFailed) as e:
        w.txn(account.id, sum(parts) + delta, splits=splits)
    assert e.value.errors[0].field == "splits"
    assert w.txn(account.id, sum(parts), splits=splits).amount == sum(parts)


@FAST
@given(
    st.lists(st.tuples(amounts, days), min_size=0, max_size=25),
    st.integers(min_value=1, max_value=7),
)
def test_pages_partition_the_list(rows: list[tuple[int, date]], limit: int) -> None:
    from valorize.service.requests import ListTransactions

    w = make_world()
    account = w.account()
    made = [w.txn(account.id, a, on=d) for a, d in rows]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(made) + 2):
        page = w.transactions.list(USER, ListTransactions(limit=limit, cursor=cursor))
        assert len(page.items) <= limit
        seen += [t.id for t in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None
    assert seen == [t.id for t in sorted(made, key=lambda t: t.sort_key, reverse=True)]
