"""AccountService over the in-memory store: balances, currency guard, guarded deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from tests.unit.conftest import OTHER, USER, World
from valorize.domain.errors import Conflict, NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.model import AccountType, Origin
from valorize.service.ports import IdempotencyMark, IdempotentReplay
from valorize.service.requests import CreateAccount, UpdateAccount


def test_create_starts_at_the_opening_balance(world: World) -> None:
    account = world.accounts.create(
        USER,
        CreateAccount(
            name="Nubank",
            type=AccountType.CREDIT,
            currency="BRL",
            opening_balance=-12_345,
            bank_code="260",
            bank_name="Nu Pagamentos",
            number="1234-5",
        ),
    )
    assert account.balance == account.opening_balance == -12_345
    assert account.transaction_count == 0
    assert account.created_at == account.updated_at == world.clock.now()
    assert world.accounts.get(USER, account.id) == account
    assert account.balance_money.to_json() == {"amount": -12_345, "currency": "BRL"}


def test_accounts_are_private(world: World) -> None:
    account = world.account(USER)
    with pytest.raises(NotFound):
        world.accounts.get(OTHER, account.id)
    with pytest.raises(NotFound):
        world.accounts.update(OTHER, account.id, UpdateAccount(name="mine"))
    with pytest.raises(NotFound):
        world.accounts.delete(OTHER, account.id, confirm=True)
    assert world.accounts.list(OTHER, 10, None).items == []


def test_patching_the_opening_balance_moves_the_balance(world: World) -> None:
    account = world.account(opening=1_000)
    world.txn(account.id, -300)
    world.txn(account.id, 50)
    assert world.balance(account.id) == 750
    updated = world.accounts.update(USER, account.id, UpdateAccount(opening_balance=5_000))
    assert updated.opening_balance == 5_000
    assert updated.balance == 4_750
    assert world.balance(account.id) == 4_750
    assert world.accounts.get(USER, account.id).transaction_count == 2


def test_patch_changes_only_what_is_sent(world: World) -> None:
    account = world.accounts.create(
        USER, CreateAccount(name="Old", type=AccountType.CHECKING, currency="BRL", bank_name="Itaú")
    )
    world.clock.advance(timedelta(hours=1))
    updated = world.accounts.update(USER, account.id, UpdateAccount(name="New"))
    assert (updated.name, updated.bank_name, updated.type) == ("New", "Itaú", AccountType.CHECKING)
    assert updated.updated_at == world.clock.now() != updated.created_at
    cleared = world.accounts.update(USER, account.id, UpdateAccount(bank_name=None))
    assert cleared.bank_name is None and cleared.name == "New"


@pytest.mark.parametrize("field", ["name", "type", "currency", "opening_balance"])
def test_required_fields_cannot_be_nulled(field: str) -> None:
    # Refused by the request itself, so that the OpenAPI document can say so (issue 12).
    with pytest.raises(ValidationError) as e:
        UpdateAccount.model_validate({field: None})
    assert e.value.errors()[0]["loc"] == (field,)
    assert "null" not in str(UpdateAccount.model_json_schema()["properties"][field])


def test_currency_changes_while_the_account_is_empty(world: World) -> None:
    account = world.account(currency="BRL")
    updated = world.accounts.update(USER, account.id, UpdateAccount(currency="USD"))
    assert updated.currency == "USD"


def test_currency_change_is_refused_once_there_are_transactions(world: World) -> None:
    account = world.account(currency="BRL")
    world.txn(account.id, -100)
    with pytest.raises(Conflict):
        world.accounts.update(USER, account.id, UpdateAccount(currency="USD"))
    assert world.accounts.get(USER, account.id).currency == "BRL"
    # Sending the same currency is not a change.
    assert world.accounts.update(USER, account.id, UpdateAccount(currency="BRL")).currency == "BRL"


def test_delete_an_empty_account_needs_no_confirmation(world: World) -> None:
    account = world.account()
    world.accounts.delete(USER, account.id, confirm=False)
    with pytest.raises(NotFound):
        world.accounts.get(USER, account.id)


def test_delete_with_transactions_needs_confirm(world: World) -> None:
    account = world.account()
    t1 = world.txn(account.id, -100)
    world.txn(account.id, -200)
    with pytest.raises(Conflict, match="2 transactions"):
        world.accounts.delete(USER, account.id, confirm=False)
    assert world.accounts.get(USER, account.id).transaction_count == 2
    world.delete_account(account.id)
    with pytest.raises(NotFound):
        world.accounts.get(USER, account.id)
    assert world.ledger.get_transaction(USER, t1.id) is None


def test_delete_unknown_account(world: World) -> None:
    with pytest.raises(NotFound):
        world.accounts.delete(USER, "nope", confirm=True)


def test_deleting_a_transfer_account_leaves_the_other_side_an_unlinked_transfer(
    world: World,
) -> None:
    a, b = world.account(name="A", opening=1_000), world.account(name="B")
    out, into = world.transfer(a.id, b.id, 400)
    world.delete_account(a.id)
    left = world.ledger.get_transaction(USER, into.id)
    assert left is not None
    # Still a transfer (so it does not turn into income), only unlinked.
    assert left.transfer_id == out.transfer_id
    assert (left.counterpart_id, left.counterpart_account_id) == (None, None)
    assert left.origin is Origin.TRANSFER and left.amount == 400
    assert world.balance(b.id) == 400
    assert world.ledger.get_transaction(USER, out.id) is None


def test_list_pages_by_id(world: World) -> None:
    made = [world.account(name=f"A{i}") for i in range(5)]
    first = world.accounts.list(USER, 2, None)
    assert [a.id for a in first.items] == [made[0].id, made[1].id]
    assert first.next_cursor == encode_cursor(made[1].id)
    second = world.accounts.list(USER, 2, first.next_cursor)
    assert [a.id for a in second.items] == [made[2].id, made[3].id]
    last = world.accounts.list(USER, 2, second.next_cursor)
    assert [a.id for a in last.items] == [made[4].id]
    assert last.next_cursor is None
    exact = world.accounts.list(USER, 5, None)
    assert len(exact.items) == 5 and exact.next_cursor is None


def test_a_bad_cursor_is_a_validation_error(world: World) -> None:
    with pytest.raises(ValidationFailed) as e:
        world.accounts.list(USER, 2, "!!!")
    assert e.value.errors[0].field == "cursor"


def test_idempotent_create_writes_once(world: World) -> None:
    mark = IdempotencyMark(
        key_hash="k",
        fingerprint="f",
        expires_at=datetime(2099, 1, 1, tzinfo=UTC),
        render=lambda a: (201, {"id": a.id}),
    )
    cmd = CreateAccount(name="A", type=AccountType.CASH, currency="BRL")
    first = world.accounts.create(USER, cmd, mark)
    with pytest.raises(IdempotentReplay) as e:
        world.accounts.create(USER, cmd, mark)
    assert e.value.record.status == 201 and e.value.record.body == {"id": first.id}
    assert [a.id for a in world.accounts.list(USER, 10, None).items] == [first.id]
    # The key is per user.
    assert world.accounts.create(OTHER, cmd, mark)


def test_a_null_currency_is_a_validation_error_even_with_transactions() -> None:
    with pytest.raises(ValidationError) as e:
        UpdateAccount.model_validate({"currency": None})
    assert e.value.errors()[0]["loc"] == ("currency",)
