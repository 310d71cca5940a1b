"""The ledger's part of one atomic write, whichever store's write it is.

A write that creates, replaces or deletes transactions (a manual create, an edit, a delete,
an account's deletion, a category's deletion moving its transactions, a recurrence's
occurrences, an import's commit or revert) records each change here and stages them into its
own batch: the transaction documents, one balance and count increment per account, and the
month and all-time read-model increments. The batch commits with the rest of that write (the
recurrence's watermark, the import's rows, the Idempotency-Key record), or not at all.

`check_limits` refuses a write that could take a balance or an all-time sum out of the safe
range: one read of the accounts and totals/all, kept out of the write's preconditions (see
domain/limits.py: a stale read is safe), so the check adds no contention on those hot
documents.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from google.cloud import firestore

from valorize.adapters.firestore.contention import unchanged
from valorize.adapters.firestore.documents import CATEGORY_FIELDS, txn_doc
from valorize.domain.limits import LedgerReach, check
from valorize.domain.model import Transaction
from valorize.domain.readmodel import Path, change, merge_changes, nest


def _user(db: firestore.Client, user_id: str) -> firestore.DocumentReference:
    return db.collection("users").document(user_id)


def check_limits(
    db: firestore.Client, user_id: str, reach: LedgerReach, field_name: str = "amount"
) -> None:
    """Raise OutOfSafeRange (422) when a write that moves balances and all-time sums as
    `reach` says could take one out of the safe range."""
    if not reach:
        return
    accounts = _user(db, user_id).collection("accounts")
    totals_ref = _user(db, user_id).collection("totals").document("all")
    refs = [accounts.document(a) for a in reach.balances]
    balances: dict[str, tuple[str, int]] = {}
    totals: dict[str, Any] = {}
    for snap in db.get_all([*refs, totals_ref] if reach.sums else refs):
        d = (snap.to_dict() or {}) if snap.exists else {}
        if snap.reference.path == totals_ref.path:
            totals = d.get("currencies", {})
        else:
            balances[snap.id] = (d.get("name", ""), d.get("balance", 0))
    check(reach, balances, totals, field_name)


class LedgerBatch:
    """The ledger changes of one write, staged into `batch` (a new one by default)."""

    def __init__(
        self, db: firestore.Client, user_id: str, batch: firestore.WriteBatch | None = None
    ) -> None:
        self.db = db
        self.user_id = user_id
        self.batch = batch if batch is not None else db.batch()
        self.transactions = _user(db, user_id).collection("transactions")
        self._months: list[dict[str, dict[Path, int]]] = []
        # Per account: (balance delta, transaction-count delta).
        self._accounts: dict[str, tuple[int, int]] = {}
        # Per account whose balance is written: its update's position in the batch.
        self._written_at: dict[str, int] = {}

    def _move(self, account_id: str, amount: int, count: int) -> None:
        was_amount, was_count = self._accounts.get(account_id, (0, 0))
        self._accounts[account_id] = (was_amount + amount, was_count + count)

    def account_for(self, old: Transaction | None, new: Transaction | None) -> None:
        """Count `old` becoming `new` (None: absent) in the balances, counts and read models,
        without writing the transaction: a bulk write (an import's commit or revert) writes
        its transactions in batches of their own and settles what they moved in one batch
        per chunk (see adapters/firestore/imports.py)."""
        self._months.append(change(old, new))
        if old is not None:
            self._move(old.account_id, -old.amount, -1)
        if new is not None:
            self._move(new.account_id, new.amount, 1)

    def create(self, t: Transaction, extra: Mapping[str, Any] | None = None) -> None:
        """Create it (fails the batch if it exists); `extra`: fields stored beside it."""
        self.batch.create(self.transactions.document(t.id), {**txn_doc(t), **(extra or {})})
        self.account_for(None, t)

    def replace(self, snapshot: Any, old: Transaction, new: Transaction) -> None:
        """Rewrite it, if nobody wrote it since `snapshot` read it."""
        # update() of every field = set(), but only as read.
        self.batch.update(snapshot.reference, txn_doc(new), option=unchanged(snapshot))
        self._months.append(change(old, new))
        if new.amount != old.amount:
            self._move(old.account_id, new.amount - old.amount, 0)

    def recategorize(self, snapshot: Any, old: Transaction, new: Transaction) -> None:
        """Write only its categories (the rest as read), if nobody wrote it since."""
        doc = txn_doc(new)
        self.batch.update(
            snapshot.reference,
            {name: doc[name] for name in CATEGORY_FIELDS},
            option=unchanged(snapshot),
        )
        self._months.append(change(old, new))

    def delete(self, snapshot: Any, t: Transaction) -> None:
        """Delete it, if nobody wrote it since `snapshot` read it: of two deletes racing,
        the loser re-reads and finds nothing, so nothing leaves the models twice."""
        self.batch.delete(snapshot.reference, option=unchanged(snapshot))
        self.account_for(t, None)

    @property
    def reach(self) -> LedgerReach:
        """How far the staged changes move balances and all-time sums."""
        return LedgerReach.of(
            {a: amount for a, (amount, _) in self._accounts.items()},
            merge_changes(*self._months),
        )

    def check_limits(self, field_name: str = "amount") -> None:
        check_limits(self.db, self.user_id, self.reach, field_name)

    def stage(self, without: Collection[str] = ()) -> firestore.WriteBatch:
        """Add the read-model and balance increments to the batch (`without`: accounts whose
        balance is not kept, being deleted) and return it, ready to commit."""
        self._stage_months(merge_changes(*self._months))
        accounts = _user(self.db, self.user_id).collection("accounts")
        for account_id, (amount, count) in self._accounts.items():
            if (amount or count) and account_id not in without:
                # Incremented even by 0, so the commit answers the balance (`balances`).
                fields = {"balance": firestore.Increment(amount)}
                if count:
                    fields["transaction_count"] = firestore.Increment(count)
                self._written_at[account_id] = len(self.batch)
                # update() requires the account to exist: a concurrent delete fails the
                # batch (NotFound), so no increment lands on a deleted account.
                self.batch.update(accounts.document(account_id), fields)
        return self.batch

    def balances(self, results: Sequence[Any]) -> dict[str, int]:
        """Each written account's balance just after the commit, from the commit's answer
        (`results`: its WriteResults, in the batch's order): a field transform's result is
        the field's new value, so no read after the write is needed, and none can race it.
        An update carries its transforms sorted by field path, "balance" first."""
        found: dict[str, int] = {}
        for account_id, at in self._written_at.items():
            transformed = results[at].transform_results
            if transformed:
                found[account_id] = int(transformed[0].integer_value)
        return found

    def _stage_months(self, changes: dict[str, dict[Path, int]]) -> None:
        months = _user(self.db, self.user_id).collection("months")
        for month, paths in changes.items():
            increments = {p: firestore.Increment(v) for p, v in paths.items()}
            self.batch.set(
                months.document(month),
                {"month": month, "currencies": nest(increments)},
                merge=True,
            )
        # The all-time totals, so "everything before month M" is all-time minus the (few)
        # months from M on, not a read of the whole history (budget rollover).
        overall: dict[Path, int] = {}
        for paths in changes.values():
            for p, v in paths.items():
                overall[p] = overall.get(p, 0) + v
        overall = {p: v for p, v in overall.items() if v}
        if overall:
            self.batch.set(
                _user(self.db, self.user_id).collection("totals").document("all"),
                {"currencies": nest({p: firestore.Increment(v) for p, v in overall.items()})},
                merge=True,
            )
