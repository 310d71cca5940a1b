"""The fakes' database: what Firestore holds, in dicts. One `Memory` is shared by the fakes of
every port, as one Firestore database is by the adapters, so a write through one port is seen
through the others (an account's balance after a ledger write).

Every write is all-or-nothing: the checks run before the first change, like a Firestore
batch. `post` is the fakes' counterpart of adapters/firestore/ledger_batch.py: the one place
a ledger write (whichever port makes it) moves transactions, balances and counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from valorize.domain.automation import RuleJob, RuleJobPage
from valorize.domain.budget import Budget
from valorize.domain.errors import NotFound
from valorize.domain.imports import Import, StagedRow
from valorize.domain.limits import LedgerReach, check
from valorize.domain.model import Account, AccountDeletion, ApiToken, Category, Transaction, User
from valorize.domain.readmodel import change, merge_changes, recompute
from valorize.domain.recurrence import Recurrence
from valorize.domain.rules import Rule
from valorize.service.ports import Clock, IdempotencyRecord, IdempotentReplay


class AlreadyExists(Exception):
    """A create met an existing document with no friendlier error (Firestore: a 500)."""


@dataclass
class Space:
    """Everything under users/{uid}."""

    user: User | None = None
    accounts: dict[str, Account] = field(default_factory=dict)
    # Accounts being deleted (hidden while running) and deleted, by account id.
    account_deletions: dict[str, AccountDeletion] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    category_names: dict[str, str] = field(default_factory=dict)  # name_key -> category id
    transactions: dict[str, Transaction] = field(default_factory=dict)
    idempotency: dict[str, IdempotencyRecord] = field(default_factory=dict)
    budgets: dict[str, Budget] = field(default_factory=dict)
    incomes: dict[str, int] = field(default_factory=dict)
    rules: dict[str, Rule] = field(default_factory=dict)
    rule_jobs: dict[str, RuleJob] = field(default_factory=dict)
    rule_job_pages: dict[tuple[str, int], RuleJobPage] = field(default_factory=dict)
    recurrences: dict[str, Recurrence] = field(default_factory=dict)
    automation_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    imports: dict[str, Import] = field(default_factory=dict)
    import_rows: dict[str, dict[str, StagedRow]] = field(default_factory=dict)  # by import id
    # What Firestore stores beside an imported transaction: its line's text (to spot it again).
    statement_descriptions: dict[str, str | None] = field(default_factory=dict)


class Memory:
    """`clock` (optional) decides idempotency-record expiry; the Firestore adapter uses the
    wall clock, which is the default here too."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self.spaces: dict[str, Space] = {}
        self.credentials: dict[str, tuple[str, str]] = {}  # email -> (user_id, password_hash)
        self.tokens: dict[str, tuple[ApiToken, str]] = {}  # token id -> (token, secret_hash)
        self.writes = 0  # committed writes, for tests that care whether anything happened

    def space(self, user_id: str) -> Space:
        return self.spaces.setdefault(user_id, Space())

    def now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    # --- Idempotency-Key records, in the same write as the effect -----------------------------

    def check_idem(self, scope: str, idem: IdempotencyRecord | None) -> None:
        # Firestore creates the record in the same batch: an existing one (even expired, as
        # the adapter reads it back as it is) fails the batch as a replay.
        if idem is None:
            return
        prior = self.space(scope).idempotency.get(idem.key_hash)
        if prior is not None:
            raise IdempotentReplay(prior)

    def save_idem(self, scope: str, idem: IdempotencyRecord | None) -> None:
        if idem is not None:
            self.space(scope).idempotency[idem.key_hash] = idem

    # --- the ledger ---------------------------------------------------------------------------

    def months(self, user_id: str) -> dict[str, dict[str, Any]]:
        # Derived from scratch: the fake is the oracle the Firestore increments must match.
        return recompute(self.space(user_id).transactions.values())

    def totals(self, user_id: str) -> dict[str, Any]:
        everything = self.space(user_id).transactions.values()
        merged = recompute(
            replace(t, date=t.date.replace(year=2000, month=1, day=1)) for t in everything
        )
        return merged.get("2000-01", {})

    def check_limits(self, user_id: str, reach: LedgerReach, field_name: str = "amount") -> None:
        accounts = self.space(user_id).accounts
        balances = {a.id: (a.name, a.balance) for a in accounts.values()}
        check(reach, balances, self.totals(user_id), field_name)

    def post(
        self,
        user_id: str,
        removed: Sequence[Transaction],
        added: Sequence[Transaction],
        *,
        missing: str,
        check_limits: bool = True,
        balances: bool = True,
    ) -> None:
        """Replace `removed` with `added` (the same id in both: an edit): the transactions,
        their accounts' balances and counts (unless `balances` is false: the account is
        going), within the money limits. NotFound(`missing`) when an account whose balance
        moves is gone; AlreadyExists when a created one exists."""
        space = self.space(user_id)
        kept = {t.id for t in removed}
        created = [t.id for t in added if t.id not in kept]
        if len(set(created)) != len(created) or any(i in space.transactions for i in created):
            raise AlreadyExists("transactions")
        moved: dict[str, tuple[int, int]] = {}
        for t, sign in [*((t, -1) for t in removed), *((t, 1) for t in added)]:
            amount, count = moved.get(t.account_id, (0, 0))
            moved[t.account_id] = (amount + sign * t.amount, count + sign)
        moved = {a: d for a, d in moved.items() if d != (0, 0)} if balances else {}
        if any(a not in space.accounts for a in moved):
            raise NotFound(missing)
        if check_limits:
            months = merge_changes(
                *(change(t, None) for t in removed), *(change(None, t) for t in added)
            )
            self.check_limits(user_id, LedgerReach.of({a: d[0] for a, d in moved.items()}, months))
        for t in removed:
            del space.transactions[t.id]
        for t in added:
            space.transactions[t.id] = t
        for account_id, (amount, count) in moved.items():
            a = space.accounts[account_id]
            space.accounts[account_id] = replace(
                a, balance=a.balance + amount, transaction_count=a.transaction_count + count
            )
        self.writes += 1
