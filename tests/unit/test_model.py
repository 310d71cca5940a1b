"""Domain rules that need no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from valorize.domain.errors import FieldError, ValidationFailed
from valorize.domain.model import (
    DEFAULT_CATEGORIES,
    Account,
    AccountType,
    ApiToken,
    Category,
    CategoryType,
    Color,
    Origin,
    Split,
    Transaction,
    TransactionType,
    category_name_key,
    check_splits,
    default_locale,
    make_transfer,
    mirror_transfer_change,
)

NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def account(id: str, currency: str = "BRL") -> Account:
    return Account(
        id=id,
        name=id,
        type=AccountType.CHECKING,
        currency=currency,
        opening_balance=0,
        balance=0,
        created_at=NOW,
        updated_at=NOW,
    )


def txn(id: str, amount: int = -100, on: date = date(2024, 1, 10), **kw: Any) -> Transaction:
    return Transaction(
        id=id,
        account_id="a",
        amount=amount,
        currency="BRL",
        date=on,
        description="x",
        created_at=NOW,
        updated_at=NOW,
        **kw,
    )


def field_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> str:
    assert exc.value.status == 422
    return exc.value.errors[0].field


# --- TransactionType ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (-1, TransactionType.DEBIT),
        (-(2**53), TransactionType.DEBIT),
        (1, TransactionType.CREDIT),
        (0, TransactionType.CREDIT),
        (2**53, TransactionType.CREDIT),
    ],
)
def test_type_follows_the_sign(amount: int, expected: TransactionType) -> None:
    assert TransactionType.of(amount) is expected
    assert txn("1", amount).type is expected


# --- splits ------------------------------------------------------------------------------------


def test_no_splits_is_always_fine() -> None:
    check_splits(-100, [], "cat")
    check_splits(-100, [], None)


def test_splits_that_add_up_are_accepted() -> None:
    check_splits(-100, [Split("a", -60), Split("b", -40)], None)
    check_splits(100, [Split("a", 30), Split("b", 30), Split("c", 40)], None)


def test_splits_must_add_up_exactly() -> None:
    with pytest.raises(ValidationFailed, match="add up to -99 but the amount is -100") as e:
        check_splits(-100, [Split("a", -60), Split("b", -39)], None)
    assert field_of(e) == "splits"


def test_a_split_transaction_needs_two_parts() -> None:
    with pytest.raises(ValidationFailed) as e:
        check_splits(-100, [Split("a", -100)], None)
    assert field_of(e) == "splits"


def test_each_split_needs_a_category() -> None:
    with pytest.raises(ValidationFailed) as e:
        check_splits(-100, [Split("a", -50), Split(None, -50)], None)
    assert field_of(e) == "splits.1.category_id"


def test_a_split_cannot_be_zero() -> None:
    with pytest.raises(ValidationFailed) as e:
        check_splits(-100, [Split("a", -100), Split("b", 0)], None)
    assert field_of(e) == "splits.1.amount"


def test_splits_replace_the_transaction_category() -> None:
    with pytest.raises(ValidationFailed) as e:
        check_splits(-100, [Split("a", -50), Split("b", -50)], "c")
    assert field_of(e) == "category_id"


def test_validation_failed_on_names_the_field() -> None:
    err = ValidationFailed.on("splits.0.amount", "bad")
    assert err.errors == [FieldError("splits.0.amount", "bad")]
    assert err.detail == "splits.0.amount: bad"


# --- transfers ---------------------------------------------------------------------------------


def transfer(
    source: Account, destination: Account, amount: int = 500
) -> tuple[Transaction, Transaction]:
    return make_transfer(
        out_id="o",
        in_id="i",
        transfer_id="t",
        source=source,
        destination=destination,
        amount=amount,
        on=date(2024, 2, 1),
        description="Move",
        notes="n",
        now=NOW,
    )


def test_make_transfer_links_two_sides() -> None:
    out, into = transfer(account("a"), account("b"))
    assert (out.account_id, out.amount, out.type) == ("a", -500, TransactionType.DEBIT)
    assert (into.account_id, into.amount, into.type) == ("b", 500, TransactionType.CREDIT)
    assert out.counterpart_id == "i" and into.counterpart_id == "o"
    assert out.counterpart_account_id == "b" and into.counterpart_account_id == "a"
    for side in (out, into):
        assert side.transfer_id == "t" and side.is_transfer
        assert side.origin is Origin.TRANSFER
        assert side.currency == "BRL" and side.date == date(2024, 2, 1)
        assert side.notes == "n" and side.description == "Move"


def test_transfer_to_the_same_account_is_refused() -> None:
    with pytest.raises(ValidationFailed) as e:
        transfer(account("a"), account("a"))
    assert field_of(e) == "to_account_id"


@pytest.mark.parametrize("amount", [0, -5])
def test_transfer_amount_must_be_positive(amount: int) -> None:
    with pytest.raises(ValidationFailed) as e:
        transfer(account("a"), account("b"), amount)
    assert field_of(e) == "amount"


def test_transfer_between_currencies_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="BRL and USD") as e:
        transfer(account("a"), account("b", "USD"))
    assert field_of(e) == "to_account_id"


def test_mirror_transfer_change() -> None:
    out, into = transfer(account("a"), account("b"))
    edited = replace(out, amount=-700, date=date(2024, 3, 1), description="New", notes="mine")
    mirrored = mirror_transfer_change(edited, into)
    assert mirrored.amount == 700 and mirrored.date == date(2024, 3, 1)
    assert mirrored.description == "New" and mirrored.notes == "n"
    assert mirrored.account_id == "b" and mirrored.id == "i"


# --- category ids and ordering -----------------------------------------------------------------


def test_category_ids() -> None:
    assert txn("1").category_ids == []
    assert txn("1", category_id="c").category_ids == ["c"]
    split = txn("1", splits=(Split("b", -50), Split("a", -30), Split("b", -20)))
    assert split.category_ids == ["a", "b"]
    assert txn("1", splits=(Split(None, -50), Split("a", -50))).category_ids == ["a"]


def test_sort_key_orders_by_date_then_id() -> None:
    a = txn(f"{1:032x}", on=date(2024, 1, 10))
    b = txn(f"{2:032x}", on=date(2024, 1, 10))
    c = txn(f"{3:032x}", on=date(2023, 12, 31))
    d = txn(f"{0:032x}", on=date(2024, 2, 1))
    assert a.sort_key == "2024-01-10#" + f"{1:032x}"
    newest_first = sorted([a, b, c, d], key=lambda t: t.sort_key, reverse=True)
    assert newest_first == [d, b, a, c]


# --- categories, tokens, defaults -------------------------------------------------------------


@pytest.mark.parametrize("name", ["Food", "food", "  FOOD ", "fOoD\t"])
def test_category_name_key_is_case_and_space_blind(name: str) -> None:
    assert category_name_key(name) == "food"


def test_category_name_key_collapses_inner_spaces() -> None:
    assert category_name_key("Bills   &  Utilities") == "bills & utilities"
    cat = Category(
        id="c",
        name=" Big  Thing",
        color=Color.RED,
        type=CategoryType.EXPENSE,
        created_at=NOW,
        updated_at=NOW,
    )
    assert cat.name_key == "big thing"


def test_token_expiry() -> None:
    token = ApiToken(id="t", user_id="u", name="n", created_at=NOW, expires_at=NOW)
    assert token.is_expired(NOW)
    assert not replace(token, expires_at=None).is_expired(NOW)
    assert not token.is_expired(datetime(2024, 1, 1, tzinfo=UTC))


def test_defaults() -> None:
    assert len(DEFAULT_CATEGORIES) == 10
    for locale in ("en", "pt-BR"):
        names = [d.names[locale] for d in DEFAULT_CATEGORIES]
        assert len({category_name_key(n) for n in names}) == 10
        assert all(d.descriptions[locale] for d in DEFAULT_CATEGORIES)
    assert sum(d.type is CategoryType.INCOME for d in DEFAULT_CATEGORIES) == 1
    assert default_locale("BRL") == "pt-BR"
    assert default_locale("USD") == "en"
