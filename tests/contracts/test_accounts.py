"""The AccountStore port."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.contracts.conftest import Make, new_id
from tests.contracts.test_ledger import consistent, every, transfer
from valorize.bootstrap import Services
from valorize.domain.errors import NotFound, ValidationFailed
from valorize.domain.ids import encode_cursor
from valorize.domain.limits import SAFE_MAX, OutOfSafeRange
from valorize.domain.model import Account, AccountType
from valorize.service.ports import IdempotencyRecord, IdempotentReplay


def test_accounts_round_trip(services: Services, make: Make) -> None:
    uid = make.user()
    full = make.account(
        uid,
        name="Cartão ü",
        type=AccountType.CREDIT,
        currency="USD",
        opening_balance=-5,
        balance=-5,
        bank_code="341",
        bank_name="Itaú",
        number="1234-5",
        low_balance_threshold=-100,
    )
    plain = make.account(uid)
    store = services.account_store
    assert store.get_account(uid, full.id) == full
    assert store.get_account(uid, new_id()) is None
    assert store.get_account(make.user(), full.id) is None  # another user's
    found = store.get_accounts(uid, [plain.id, full.id, new_id(), full.id])
    assert found == {full.id: full, plain.id: plain}


def test_accounts_page_by_id(services: Services, make: Make) -> None:
    uid = make.user()
    made = sorted((make.account(uid, name=f"A{i}") for i in range(5)), key=lambda a: a.id)
    seen: list[Account] = []
    cursor = None
    while True:
        page = services.account_store.list_accounts(uid, 2, cursor)
        seen += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == made
    with pytest.raises(ValidationFailed):
        services.account_store.list_accounts(uid, 2, encode_cursor("../x"))


def test_the_idempotency_record_commits_with_the_account(services: Services, make: Make) -> None:
    uid = make.user()
    record = IdempotencyRecord("a" * 64, "fp", 201, {"n": 1}, datetime(2100, 1, 1, tzinfo=UTC))
    account = replace(make.account(uid), id=new_id())
    services.account_store.add_account(uid, account, record)
    with pytest.raises(IdempotentReplay) as replay:
        services.account_store.add_account(uid, replace(account, id=new_id()), record)
    assert replay.value.record == record
    assert len(services.account_store.list_accounts(uid, 10, None).items) == 2


def test_an_update_keeps_the_ledgers_balance_and_count(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid, opening_balance=100, balance=100)
    make.stored(uid, account, -30)  # balance 70, one transaction

    def reopen(stale: Account) -> Account:
        # What the service does: the opening balance moves the balance by as much.
        return replace(
            stale,
            name="Main",
            opening_balance=stale.opening_balance + 50,
            balance=stale.balance + 50,
            transaction_count=99,  # not the account's to change
        )

    updated = services.account_store.update_account(uid, account.id, reopen)
    assert updated.name == "Main"
    stored = services.account_store.get_account(uid, account.id)
    assert stored is not None
    assert (stored.name, stored.opening_balance, stored.balance) == ("Main", 150, 120)
    assert stored.transaction_count == 1
    consistent(services, uid)
    with pytest.raises(NotFound):
        services.account_store.update_account(uid, new_id(), lambda a: a)


def test_an_opening_balance_beyond_the_limit_is_refused(services: Services, make: Make) -> None:
    uid = make.user()
    account = make.account(uid, opening_balance=SAFE_MAX - 1, balance=SAFE_MAX - 1)
    with pytest.raises(OutOfSafeRange) as refused:
        services.account_store.update_account(
            uid,
            account.id,
            lambda a: replace(a, opening_balance=SAFE_MAX + 1, balance=a.balance + 2),
        )
    assert refused.value.errors[0].field == "opening_balance"
    assert services.account_store.get_account(uid, account.id) == account


def test_deleting_an_account_takes_its_transactions_off_everything(
    services: Services, make: Make
) -> None:
    uid = make.user()
    doomed, kept = make.account(uid), make.account(uid, name="Savings")
    for amount in (-100, -200, 300):
        make.stored(uid, doomed, amount)
    out, into = transfer(make, doomed, kept, 700)
    services.ledger.add_transactions(uid, [out, into])
    mine = make.stored(uid, kept, -5)
    services.account_store.delete_account(uid, doomed.id)
    assert services.account_store.get_account(uid, doomed.id) is None
    left = {t.id: t for t in every(services, uid)}
    # The other side of the transfer stays, still a transfer, unlinked.
    assert left == {
        mine.id: mine,
        into.id: replace(into, counterpart_id=None, counterpart_account_id=None),
    }
    consistent(services, uid)
    services.account_store.delete_account(uid, doomed.id)  # again: nothing left to do
