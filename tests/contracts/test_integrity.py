"""The integrity check (service/integrity.py) over the ports, on the fake and on Firestore:
silent on a ledger written through the ports, and it names every kind of drift when the
stored derived data is tampered with behind their back."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from tests.contracts.conftest import Make, new_id
from tests.contracts.test_ledger import transfer
from valorize.bootstrap import Services
from valorize.domain.model import Split
from valorize.service.integrity import Drift, IntegrityReport


def ledger(services: Services, make: Make) -> tuple[str, list[str]]:
    """A user with two accounts, a transfer, splits, several months and a deletion."""
    uid = make.user()
    checking = make.account(uid, opening_balance=10_000, balance=10_000)
    savings = make.account(uid, currency="BRL", name="Savings")
    food, rent = make.category(uid, "Food"), make.category(uid, "Rent")
    make.stored(uid, checking, -1_500, date(2024, 1, 5), category_id=food.id)
    make.stored(uid, checking, 250_000, date(2024, 2, 1))
    split = make.txn(
        checking,
        -90_000,
        date(2024, 2, 3),
        splits=(Split(rent.id, -80_000), Split(food.id, -10_000)),
    )
    gone = make.txn(savings, -7, date(2023, 12, 31))
    services.ledger.add_transactions(uid, [split, gone, *transfer(make, checking, savings, 5_000)])
    services.ledger.delete_transaction(uid, gone.id)
    return uid, [checking.id, savings.id]


def test_a_ledger_written_through_the_ports_has_no_drift(services: Services, make: Make) -> None:
    uid, _ = ledger(services, make)
    report = services.integrity.check(uid)
    assert report == IntegrityReport(uid, transactions=5, accounts=2, months=2, drift=[])
    assert report.ok and report.as_dict()["ok"] is True
    # An empty user, and one no store has heard of, are simply clean.
    assert services.integrity.check(make.user()).ok
    unknown = new_id()
    assert services.integrity.check(unknown) == IntegrityReport(unknown)


def test_every_user_is_listed_for_a_full_check(services: Services, make: Make) -> None:
    made = {make.user() for _ in range(3)}
    assert made <= set(services.integrity.user_ids())


def test_a_tampered_balance_and_count_are_named(
    services: Services, make: Make, backend: str
) -> None:
    uid, (checking, _) = ledger(services, make)
    if backend == "fake":
        space = services.ledger.memory.space(uid)  # type: ignore[attr-defined]
        account = space.accounts[checking]
        space.accounts[checking] = replace(account, balance=account.balance + 1)
        space.accounts[checking] = replace(
            space.accounts[checking], transaction_count=account.transaction_count + 2
        )
    else:
        ref = services.firestore.document(f"users/{uid}/accounts/{checking}")
        doc = ref.get().to_dict() or {}
        ref.update(
            {"balance": doc["balance"] + 1, "transaction_count": doc["transaction_count"] + 2}
        )
    drift = services.integrity.check(uid).drift
    expected_balance = 10_000 - 1_500 + 250_000 - 90_000 - 5_000
    assert drift == [
        Drift("balance", checking, expected_balance + 1, expected_balance),
        Drift("transaction_count", checking, 6, 4),
    ]


def test_a_broken_transfer_link_is_named(services: Services, make: Make, backend: str) -> None:
    uid = make.user()
    a, b = make.account(uid), make.account(uid, name="Savings")
    out, into = transfer(make, a, b, 700)
    services.ledger.add_transactions(uid, [out, into])
    stranger = new_id()
    if backend == "fake":
        space = services.ledger.memory.space(uid)  # type: ignore[attr-defined]
        space.transactions[into.id] = replace(into, counterpart_id=stranger)
    else:
        services.firestore.document(f"users/{uid}/transactions/{into.id}").update(
            {"counterpart_id": stranger}
        )
    assert set(services.integrity.check(uid).drift) == {
        Drift("transfer", out.id, into.id, stranger),
        Drift("transfer", into.id, stranger, None),
    }


# Firestore only: the fake ledger recomputes its read models on every read.
@pytest.mark.parametrize(
    "backend", [pytest.param("firestore", marks=pytest.mark.integration)], indirect=True
)
def test_tampered_read_models_are_named_counter_by_counter(make: Make, services: Services) -> None:
    uid, (checking, _) = ledger(services, make)
    months = services.firestore.collection(f"users/{uid}/months")
    months.document("2024-02").update({"currencies.BRL.expense": 1})
    # A month nobody wrote to, with a counter: only its non-zero counters count.
    months.document("1999-07").set(
        {"month": "1999-07", "currencies": {"BRL": {"income": 0, "expense": 3}}}
    )
    services.firestore.document(f"users/{uid}/totals/all").update(
        {f"currencies.BRL.accounts.{checking}.income": 9}
    )
    assert services.integrity.check(uid).drift == [
        Drift("month", "1999-07 BRL.expense", 3, 0),
        Drift("month", "2024-02 BRL.expense", 1, 90_000),
        Drift("totals", f"BRL.accounts.{checking}.income", 9, 250_000),
    ]
