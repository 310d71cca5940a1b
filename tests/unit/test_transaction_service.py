"""TransactionService over the in-memory store: signs, splits, ownership, transfers, listing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.conftest import OTHER, USER, World
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.model import Origin, Split, Transaction, TransactionType
from valorize.domain.text import fold
from valorize.service.ports import IdempotencyMark, IdempotentReplay
from valorize.service.requests import (
    CreateTransaction,
    CreateTransfer,
    ListTransactions,
    SplitIn,
    UpdateTransaction,
)


def field_of(e: pytest.ExceptionInfo[ValidationFailed]) -> str:
    return e.value.errors[0].field


def listed(world: World, user_id: str = USER, **query: Any) -> list[Transaction]:
    return world.transactions.list(user_id, ListTransactions.model_validate(query)).items


def patch(world: World, txn_id: str, user_id: str = USER, **changes: Any) -> Transaction:
    return world.transactions.update(user_id, txn_id, UpdateTransaction.model_validate(changes))


# --- create ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "kind"), [(-1, TransactionType.DEBIT), (1, TransactionType.CREDIT)]
)
def test_type_follows_the_sign(world: World, amount: int, kind: TransactionType) -> None:
    account = world.account()
    t = world.txn(account.id, amount)
    assert t.type is kind
    assert t.currency == "BRL" and t.origin is Origin.MANUAL


def test_create_moves_balance_and_count(world: World) -> None:
    account = world.account(opening=1_000)
    t = world.txn(account.id, -250)
    stored = world.account_store.get_account(USER, account.id)
    assert stored is not None and (stored.balance, stored.transaction_count) == (750, 1)
    assert world.transactions.get(USER, t.id) == t


def test_the_currency_is_the_accounts(world: World) -> None:
    account = world.account(currency="JPY")
    assert world.txn(account.id, -500).currency == "JPY"


def test_a_split_transaction(world: World) -> None:
    account = world.account()
    a, b = world.category(name="A"), world.category(name="B")
    t = world.txn(account.id, -100, splits=[(a.id, -70), (b.id, -30)])
    assert t.splits == (Split(a.id, -70), Split(b.id, -30))
    assert t.category_id is None and t.category_ids == sorted([a.id, b.id])


@pytest.mark.parametrize(
    ("splits", "category", "field"),
    [
        ([("A", -70), ("B", -20)], False, "splits"),  # do not add up
        ([("A", -100)], False, "splits"),  # one part only
        ([("A", -100), ("B", 0)], False, "splits.1.amount"),  # a zero part
        ([("A", -70), ("B", -30)], True, "category_id"),  # a category alongside
        ([("A", -70), ("X", -30)], False, "splits.1.category_id"),  # no such category
    ],
)
def test_split_rules(
    world: World, splits: list[tuple[str, int]], category: bool, field: str
) -> None:
    account = world.account()
    cats = {"A": world.category(name="A").id, "B": world.category(name="B").id, "X": "f" * 32}
    with pytest.raises(ValidationFailed) as e:
        world.txn(
            account.id,
            -100,
            splits=[(cats[c], amt) for c, amt in splits],
            category_id=cats["A"] if category else None,
        )
    assert field_of(e) == field
    assert world.balance(account.id) == 0


def test_foreign_account_is_named(world: World) -> None:
    foreign = world.account(OTHER)
    with pytest.raises(ValidationFailed, match="no such account") as e:
        world.txn(foreign.id, -100)
    assert field_of(e) == "account_id"
    assert world.balance(foreign.id, OTHER) == 0


def test_a_missing_account_is_named_before_splits_and_categories(world: World) -> None:
    # The account, the categories and the totals are read together; refusals keep the order.
    world.account()
    with pytest.raises(ValidationFailed) as e:
        world.txn("f" * 32, -100, splits=[("e" * 32, -70), ("d" * 32, -20)])
    assert field_of(e) == "account_id"


def test_foreign_category_is_named(world: World) -> None:
    account = world.account()
    mine = world.category(name="Mine")
    foreign = world.category(OTHER, name="Theirs")
    with pytest.raises(ValidationFailed) as e:
        world.txn(account.id, -100, category_id=foreign.id)
    assert field_of(e) == "category_id"
    with pytest.raises(ValidationFailed) as e:
        world.txn(account.id, -100, splits=[(mine.id, -50), (foreign.id, -50)])
    assert field_of(e) == "splits.1.category_id"
    t = world.txn(account.id, -100)
    with pytest.raises(ValidationFailed) as e:
        patch(world, t.id, category_id=foreign.id)
    assert field_of(e) == "category_id"
    assert world.transactions.get(USER, t.id).category_id is None


def test_idempotent_create_writes_once(world: World) -> None:
    account = world.account()
    mark = IdempotencyMark(
        key_hash="k",
        fingerprint="f",
        expires_at=datetime(2099, 1, 1, tzinfo=UTC),
        render=lambda t: (201, {"id": t.id}),
    )
    cmd = CreateTransaction(
        account_id=account.id, amount=-100, date=date(2024, 1, 1), description="Once"
    )
    first = world.transactions.create(USER, cmd, mark)
    with pytest.raises(IdempotentReplay) as e:
        world.transactions.create(USER, cmd, mark)
    assert e.value.record.body == {"id": first.id}
    assert world.balance(account.id) == -100
    assert len(listed(world)) == 1


# --- update ------------------------------------------------------------------------------------


def test_update_amount_moves_the_balance_and_the_type(world: World) -> None:
    account = world.account(opening=1_000)
    t = world.txn(account.id, -100)
    updated = patch(world, t.id, amount=250)
    assert updated.type is TransactionType.CREDIT
    assert world.balance(account.id) == 1_250
    assert listed(world, type="credit") == [updated]
    assert listed(world, type="debit") == []


@pytest.mark.parametrize("field", ["amount", "date", "description"])
def test_required_fields_cannot_be_nulled(field: str) -> None:
    # Refused by the request itself, so that the OpenAPI document can say so (issue 12).
    with pytest.raises(ValidationError) as e:
        UpdateTransaction.model_validate({field: None})
    assert e.value.errors()[0]["loc"] == (field,)


def test_update_unknown_or_foreign_transaction(world: World) -> None:
    t = world.txn(world.account().id, -100)
    with pytest.raises(NotFound):
        patch(world, t.id, OTHER, description="mine now")
    with pytest.raises(NotFound):
        patch(world, "f" * 32, description="x")
    with pytest.raises(NotFound):
        world.transactions.get(OTHER, t.id)
    with pytest.raises(NotFound):
        world.transactions.delete(OTHER, t.id)


def test_setting_a_category_on_a_split_transaction_stops_splitting(world: World) -> None:
    account = world.account()
    a, b = world.category(name="A"), world.category(name="B")
    t = world.txn(account.id, -100, splits=[(a.id, -70), (b.id, -30)])
    updated = patch(world, t.id, category_id=b.id)
    assert updated.splits == () and updated.category_id == b.id


def test_changing_the_amount_of_a_split_transaction_alone_is_refused(world: World) -> None:
    account = world.account()
    a, b = world.category(name="A"), world.category(name="B")
    t = world.txn(account.id, -100, splits=[(a.id, -70), (b.id, -30)])
    with pytest.raises(ValidationFailed) as e:
        patch(world, t.id, amount=-120)
    assert field_of(e) == "splits"
    updated = patch(
        world,
        t.id,
        amount=-120,
        splits=[{"category_id": a.id, "amount": -90}, {"category_id": b.id, "amount": -30}],
    )
    assert sum(s.amount for s in updated.splits) == -120
    assert world.balance(account.id) == -120
    assert patch(world, t.id, splits=[]).splits == ()


def test_splitting_an_uncategorized_transaction(world: World) -> None:
    account = world.account()
    a, b = world.category(name="A"), world.category(name="B")
    t = world.txn(account.id, -100)
    updated = patch(
        world,
        t.id,
        splits=[{"category_id": a.id, "amount": -50}, {"category_id": b.id, "amount": -50}],
    )
    assert len(updated.splits) == 2
    with pytest.raises(ValidationFailed) as e:
        patch(
            world,
            t.id,
            splits=[{"category_id": a.id, "amount": -50}, {"category_id": "f" * 32, "amount": -50}],
        )
    assert field_of(e) == "splits.1.category_id"


# --- transfers ---------------------------------------------------------------------------------


def test_transfer_creates_a_linked_pair(world: World) -> None:
    a, b = world.account(name="A", opening=1_000), world.account(name="B")
    out, into = world.transfer(a.id, b.id, 400)
    assert (out.amount, into.amount) == (-400, 400)
    assert out.counterpart_id == into.id and into.counterpart_id == out.id
    assert out.transfer_id == into.transfer_id is not None
    assert (world.balance(a.id), world.balance(b.id)) == (600, 400)
    for account in (a, b):
        stored = world.account_store.get_account(USER, account.id)
        assert stored is not None and stored.transaction_count == 1


@pytest.mark.parametrize("side", ["from_account_id", "to_account_id"])
def test_transfer_with_a_foreign_account_is_named(world: World, side: str) -> None:
    mine = world.account(name="A")
    foreign = world.account(OTHER, name="B")
    ids = {"from_account_id": mine.id, "to_account_id": mine.id, side: foreign.id}
    with pytest.raises(ValidationFailed) as e:
        world.transactions.transfer(
            USER, CreateTransfer(amount=1, date=date(2024, 1, 1), description="x", **ids)
        )
    assert field_of(e) == side
    assert world.balance(foreign.id, OTHER) == 0


def test_transfer_rules(world: World) -> None:
    a, b = world.account(name="A"), world.account(name="B")
    usd = world.account(name="C", currency="USD")
    with pytest.raises(ValidationFailed) as e:
        world.transfer(a.id, a.id, 10)
    assert field_of(e) == "to_account_id"
    with pytest.raises(ValidationFailed) as e:
        world.transfer(a.id, usd.id, 10)
    assert field_of(e) == "to_account_id"
    assert world.balance(a.id) == world.balance(b.id) == 0


def test_editing_one_side_of_a_transfer_mirrors_the_other(world: World) -> None:
    a, b = world.account(name="A", opening=1_000), world.account(name="B")
    out, into = world.transfer(a.id, b.id, 400)
    patch(world, into.id, amount=150, date=date(2024, 3, 3), description="Fixed", notes="only here")
    new_out = world.transactions.get(USER, out.id)
    new_in = world.transactions.get(USER, into.id)
    assert (new_out.amount, new_in.amount) == (-150, 150)
    assert new_out.date == new_in.date == date(2024, 3, 3)
    assert new_out.description == new_in.description == "Fixed"
    assert new_in.notes == "only here" and new_out.notes is None
    assert (world.balance(a.id), world.balance(b.id)) == (850, 150)


@pytest.mark.parametrize(("side", "amount"), [("out", 5), ("out", 0), ("in", -5), ("in", 0)])
def test_a_transfer_side_keeps_its_direction(world: World, side: str, amount: int) -> None:
    a, b = world.account(name="A"), world.account(name="B")
    out, into = world.transfer(a.id, b.id, 400)
    with pytest.raises(ValidationFailed) as e:
        patch(world, (out if side == "out" else into).id, amount=amount)
    assert field_of(e) == "amount"
    assert (world.balance(a.id), world.balance(b.id)) == (-400, 400)


def test_a_transfer_cannot_be_split(world: World) -> None:
    a, b = world.account(name="A"), world.account(name="B")
    x, y = world.category(name="X"), world.category(name="Y")
    out, _ = world.transfer(a.id, b.id, 400)
    with pytest.raises(ValidationFailed) as e:
        patch(
            world,
            out.id,
            splits=[{"category_id": x.id, "amount": -200}, {"category_id": y.id, "amount": -200}],
        )
    assert field_of(e) == "splits"


def test_deleting_one_side_of_a_transfer_deletes_both(world: World) -> None:
    a, b = world.account(name="A", opening=1_000), world.account(name="B")
    out, into = world.transfer(a.id, b.id, 400)
    world.txn(b.id, 5)
    world.transactions.delete(USER, into.id)
    for t in (out, into):
        with pytest.raises(NotFound):
            world.transactions.get(USER, t.id)
    assert (world.balance(a.id), world.balance(b.id)) == (1_000, 5)
    counts = [world.accounts.get(USER, x.id).transaction_count for x in (a, b)]
    assert counts == [0, 1]
    with pytest.raises(NotFound):
        world.transactions.delete(USER, out.id)


def test_idempotent_transfer_writes_once(world: World) -> None:
    a, b = world.account(name="A"), world.account(name="B")
    mark = IdempotencyMark(
        key_hash="k",
        fingerprint="f",
        expires_at=datetime(2099, 1, 1, tzinfo=UTC),
        render=lambda pair: (201, {"transfer_id": pair[0].transfer_id}),
    )
    cmd = CreateTransfer(
        from_account_id=a.id, to_account_id=b.id, amount=10, date=date(2024, 1, 1), description="x"
    )
    world.transactions.transfer(USER, cmd, mark)
    with pytest.raises(IdempotentReplay):
        world.transactions.transfer(USER, cmd, mark)
    assert (world.balance(a.id), world.balance(b.id)) == (-10, 10)


# --- listing -----------------------------------------------------------------------------------


@pytest.fixture
def ledger(world: World) -> dict[str, Transaction]:
    a, b = world.account(name="A"), world.account(name="B")
    food, pay = world.category(name="Food"), world.category(name="Pay")
    t = {
        "cafe": world.txn(
            a.id, -450, on=date(2024, 1, 5), description="Café da Manhã", category_id=food.id
        ),
        "salary": world.txn(
            a.id, 500_000, on=date(2024, 1, 31), description="SALARIO", category_id=pay.id
        ),
        "split": world.txn(
            b.id,
            -1_000,
            on=date(2024, 2, 1),
            description="Mercado",
            splits=[(food.id, -600), (pay.id, -400)],
        ),
        "big": world.txn(b.id, -100_000, on=date(2024, 2, 10), description="Aluguel"),
        "tiny": world.txn(a.id, 1, on=date(2024, 1, 5), description="Juros"),
    }
    return t


def ids(items: list[Transaction]) -> list[str]:
    return [t.id for t in items]


def test_list_newest_first_with_stable_ties(world: World, ledger: dict[str, Transaction]) -> None:
    order = ["big", "split", "salary", "tiny", "cafe"]  # same date: the later id first
    assert ids(listed(world)) == [ledger[k].id for k in order]
    assert listed(world, OTHER) == []


def matching(world: World, ledger: dict[str, Transaction], **query: Any) -> set[str]:
    found = listed(world, **query)
    return {name for name, t in ledger.items() if t in found}


def test_list_filters(world: World, ledger: dict[str, Transaction]) -> None:
    a, b = ledger["cafe"].account_id, ledger["big"].account_id
    food = ledger["cafe"].category_id
    assert matching(world, ledger, account_id=a) == {"cafe", "salary", "tiny"}
    assert matching(world, ledger, account_id=b) == {"split", "big"}
    assert matching(world, ledger, category_id=food) == {"cafe", "split"}
    assert matching(world, ledger, type="credit") == {"salary", "tiny"}
    assert matching(world, ledger, type="debit") == {"cafe", "split", "big"}
    assert matching(world, ledger, **{"from": "2024-01-05", "to": "2024-01-05"}) == {"cafe", "tiny"}
    assert matching(world, ledger, **{"from": "2024-01-06", "to": "2024-02-01"}) == {
        "salary",
        "split",
    }
    assert matching(world, ledger, to="2024-01-31") == {"cafe", "tiny", "salary"}
    assert matching(world, ledger, **{"from": "2024-02-02"}) == {"big"}
    assert matching(world, ledger, account_id=a, type="debit") == {"cafe"}


def test_list_by_magnitude(world: World, ledger: dict[str, Transaction]) -> None:
    assert matching(world, ledger, min_amount="450", max_amount="1000") == {"cafe", "split"}
    assert matching(world, ledger, min_amount="100000") == {"salary", "big"}
    assert matching(world, ledger, max_amount="1") == {"tiny"}
    assert matching(world, ledger, min_amount="450", max_amount="450") == {"cafe"}
    with pytest.raises(ValidationFailed) as e:
        listed(world, min_amount="10", max_amount="9")
    assert field_of(e) == "min_amount"


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("cafe", {"cafe"}),
        ("CAFÉ", {"cafe"}),
        ("manha", {"cafe"}),
        ("salário", {"salary"}),
        ("a", {"cafe", "salary", "split", "big"}),
        ("nothing", set()),
    ],
)
def test_list_by_text_ignores_case_and_accents(
    world: World, ledger: dict[str, Transaction], q: str, expected: set[str]
) -> None:
    assert {k for k, t in ledger.items() if t in listed(world, q=q)} == expected


def test_fold() -> None:
    assert fold("Café") == fold("CAFE") == "cafe"
    assert fold("Ação São João") == "acao sao joao"
    assert fold("Straße") == "strasse"


def test_from_after_to_is_refused(world: World) -> None:
    with pytest.raises(ValidationFailed) as e:
        listed(world, **{"from": "2024-02-01", "to": "2024-01-31"})
    assert field_of(e) == "from"


def test_list_by_import_id(world: World) -> None:
    account = world.account()
    t = world.txn(account.id, -100)
    imported = replace(t, id=world.ids.new_id(), import_id="k" + "1" * 31, origin=Origin.IMPORT)
    world.ledger.add_transactions(USER, [imported])
    assert listed(world, import_id="k" + "1" * 31) == [imported]
    assert world.balance(account.id) == -200


def test_cursor_pages_cover_everything_once(world: World) -> None:
    account = world.account()
    made = [world.txn(account.id, -i, on=date(2024, 1, 1 + i % 3)) for i in range(1, 12)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = world.transactions.list(USER, ListTransactions(limit=4, cursor=cursor))
        seen += ids(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted(made, key=lambda t: t.sort_key, reverse=True)
    assert seen == ids(expected)


def test_filtered_pages_cover_every_match_once(world: World) -> None:
    account = world.account()
    made = [world.txn(account.id, -i, on=date(2024, 1, 1 + i % 5)) for i in range(1, 30)]
    query = {"limit": "3", "min_amount": "10", "max_amount": "20"}
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = world.transactions.list(
            USER,
            ListTransactions.model_validate({**query, **({"cursor": cursor} if cursor else {})}),
        )
        seen += ids(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [
        t for t in sorted(made, key=lambda t: t.sort_key, reverse=True) if 10 <= -t.amount <= 20
    ]
    assert seen == ids(expected)


@pytest.mark.parametrize("cursor", ["garbage!", "bm90LWEta2V5"])  # the 2nd: "not-a-key"
def test_a_foreign_cursor_is_refused(world: World, cursor: str) -> None:
    with pytest.raises(ValidationFailed) as e:
        world.transactions.list(USER, ListTransactions(cursor=cursor))
    assert field_of(e) == "cursor"


def test_split_in_commands_are_strict() -> None:
    with pytest.raises(ValueError, match="amount"):
        SplitIn.model_validate({"category_id": "a", "amount": 1.5})
