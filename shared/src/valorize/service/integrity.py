"""The integrity check: what a user's derived data should be, recomputed from their
transactions, beside what is stored.

Balances, transaction counts, the monthly read models and the all-time totals are written by
increments in the same atomic write as the transactions (service/ports/ledger.py), so they
should never drift; this is the check that proves it after a fault (the chaos suite runs it
after every scenario, `nox -s verify` on demand). It reads, it never repairs: a drift is a
bug to find, and a repair racing live writes would hide it.

It streams the transactions a page at a time and keeps only per-month counters, so a user
with 100,000 transactions costs their documents' reads and a few megabytes, not a copy of
the ledger.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from valorize.domain.model import Account, Transaction
from valorize.domain.readmodel import Path, contribution, month_of, prune
from valorize.service.ports.accounts import AccountStore
from valorize.service.ports.automations import AutomationStore
from valorize.service.ports.ledger import Ledger, TransactionFilter
from valorize.service.ports.pages import walk

PAGE = 500
# Earlier than any month a transaction can have (dates start at 0001-01-01).
_FIRST_MONTH = "0000-01"


@dataclass(frozen=True)
class Drift:
    """One stored value that differs from its recomputation. `where` names it: an account
    id, or a month ("2025-03") or "totals" and the counter's path ("BRL.expense")."""

    kind: str  # balance | transaction_count | month | totals | transfer
    where: str
    stored: Any
    expected: Any

    def __str__(self) -> str:
        return f"{self.kind} {self.where}: stored {self.stored!r}, expected {self.expected!r}"


@dataclass(frozen=True)
class IntegrityReport:
    user_id: str
    transactions: int = 0
    accounts: int = 0
    months: int = 0
    drift: list[Drift] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "ok": self.ok,
            "transactions": self.transactions,
            "accounts": self.accounts,
            "months": self.months,
            "drift": [
                {"kind": d.kind, "where": d.where, "stored": d.stored, "expected": d.expected}
                for d in self.drift
            ],
        }


@dataclass
class _Tally:
    """What the transactions add up to, built one transaction at a time."""

    months: dict[str, dict[Path, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    totals: dict[Path, int] = field(default_factory=lambda: defaultdict(int))
    sums: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Transfer links as stored: id -> (counterpart id, transfer id).
    links: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    seen: int = 0

    def add(self, txn: Transaction) -> None:
        self.seen += 1
        self.sums[txn.account_id] += txn.amount
        self.counts[txn.account_id] += 1
        for path, value in contribution(txn).items():
            self.months[month_of(txn)][path] += value
            self.totals[path] += value
        if txn.is_transfer:
            self.links[txn.id] = (txn.counterpart_id, txn.transfer_id)


class IntegrityCheck:
    def __init__(self, ledger: Ledger, account_store: AccountStore, users: AutomationStore):
        self.ledger = ledger
        self.account_store = account_store
        self.users = users

    def check(self, user_id: str) -> IntegrityReport:
        tally = _Tally()
        for txn in self._transactions(user_id):
            tally.add(txn)
        accounts = list(self._accounts(user_id))
        stored_months = self.ledger.get_months_from(user_id, _FIRST_MONTH)
        drift = [
            *_accounts_drift(accounts, tally),
            *_model_drift(stored_months, tally.months),
            *(
                Drift("totals", path, have, want)
                for path, have, want in _counters_drift(
                    self.ledger.get_totals(user_id), tally.totals
                )
            ),
            *_transfer_drift(tally.links),
        ]
        months = {m for m, v in stored_months.items() if prune(v)} | set(tally.months)
        return IntegrityReport(user_id, tally.seen, len(accounts), len(months), drift)

    def user_ids(self) -> Iterator[str]:
        return walk(lambda cursor: self.users.list_user_ids(PAGE, cursor))

    def _transactions(self, user_id: str) -> Iterator[Transaction]:
        every = TransactionFilter()
        return walk(lambda cursor: self.ledger.list_transactions(user_id, every, PAGE, cursor))

    def _accounts(self, user_id: str) -> Iterator[Account]:
        return walk(lambda cursor: self.account_store.list_accounts(user_id, PAGE, cursor))


def _accounts_drift(accounts: list[Account], tally: _Tally) -> Iterator[Drift]:
    # An account being deleted is not listed; its transactions still count in the read
    # models (they leave them batch by batch, with the transactions), so only listed
    # accounts are checked here.
    for account in accounts:
        expected = account.opening_balance + tally.sums.get(account.id, 0)
        if account.balance != expected:
            yield Drift("balance", account.id, account.balance, expected)
        count = tally.counts.get(account.id, 0)
        if account.transaction_count != count:
            yield Drift("transaction_count", account.id, account.transaction_count, count)


def _model_drift(
    stored: Mapping[str, Mapping[str, Any]], expected: Mapping[str, Mapping[Path, int]]
) -> Iterator[Drift]:
    for month in sorted(set(stored) | set(expected)):
        for path, have, want in _counters_drift(stored.get(month, {}), expected.get(month, {})):
            yield Drift("month", f"{month} {path}", have, want)


def _counters_drift(
    stored: Mapping[str, Any], expected: Mapping[Path, int]
) -> Iterator[tuple[str, int, int]]:
    """(path, stored, expected) of every counter that differs from its recomputation (zero
    and absent are the same: a stored model keeps zeros after deletions)."""
    have = dict(_leaves(stored))
    for path in sorted(set(have) | set(expected)):
        if have.get(path, 0) != expected.get(path, 0):
            yield ".".join(path), have.get(path, 0), expected.get(path, 0)


def _leaves(tree: Mapping[str, Any], prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _transfer_drift(links: Mapping[str, tuple[str | None, str | None]]) -> Iterator[Drift]:
    """Each side of a transfer points at the other, under the same transfer id (a side whose
    counterpart was deleted with its account is unlinked: counterpart None)."""
    for txn_id, (counterpart, transfer_id) in sorted(links.items()):
        if counterpart is None:
            continue
        back = links.get(counterpart)
        if back != (txn_id, transfer_id):
            yield Drift("transfer", txn_id, counterpart, back[0] if back else None)
