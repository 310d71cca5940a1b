"""The AccountStore port.

users/{uid}/accounts/{id}   balance and transaction_count move by increments with the
                            ledger; `deleting` hides an account being deleted
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from valorize.adapters.firestore.base import FirestoreAdapter, by_id
from valorize.adapters.firestore.contention import commit, unchanged
from valorize.adapters.firestore.documents import account_doc, account_of, txn_of
from valorize.adapters.firestore.idempotency import commit_with_record
from valorize.adapters.firestore.ledger_batch import LedgerBatch
from valorize.domain.errors import NotFound
from valorize.domain.ids import encode_cursor
from valorize.domain.limits import LedgerReach, Reach, check
from valorize.domain.model import Account
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult

# Transactions deleted per batch with their account (each may also unlink a counterpart).
DELETE_PAGE = 200


class FirestoreAccounts(FirestoreAdapter):
    def add_account(
        self, user_id: str, account: Account, idem: IdempotencyRecord | None = None
    ) -> None:
        batch = self.db.batch()
        batch.create(self._col(user_id, "accounts").document(account.id), account_doc(account))
        commit_with_record(self.db, batch, user_id, idem)

    def get_account(self, user_id: str, account_id: str) -> Account | None:
        snap = self._col(user_id, "accounts").document(account_id).get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        return None if d.get("deleting") else account_of(snap.id, d)

    def get_accounts(self, user_id: str, account_ids: Sequence[str]) -> dict[str, Account]:
        refs = [self._col(user_id, "accounts").document(i) for i in dict.fromkeys(account_ids)]
        found: dict[str, Account] = {}
        for snap in self.db.get_all(refs):
            d = snap.to_dict() if snap.exists else None
            if d and not d.get("deleting"):
                found[snap.id] = account_of(snap.id, d)
        return found

    def list_accounts(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Account]:
        snaps = list(by_id(self._col(user_id, "accounts"), cursor).limit(limit + 1).stream())
        items = [
            account_of(s.id, d)
            for s in snaps[:limit]
            if not (d := s.to_dict() or {}).get("deleting")
        ]
        nxt = encode_cursor(snaps[limit - 1].id) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def update_account(
        self, user_id: str, account_id: str, mutate: Callable[[Account], Account]
    ) -> Account:
        ref = self._col(user_id, "accounts").document(account_id)

        def attempt() -> Account:
            snap = ref.get()
            d = snap.to_dict() if snap.exists else None
            if not d or d.get("deleting"):
                raise NotFound("account not found")
            old = account_of(snap.id, d)
            new = mutate(old)
            moved = LedgerReach({old.id: Reach.of(new.balance - old.balance)})
            check(moved, {old.id: (old.name, old.balance)}, {}, "opening_balance")
            fields = account_doc(new)
            # The balance moves by a delta so concurrent transaction writes are not lost.
            fields.pop("transaction_count")
            fields["balance"] = firestore.Increment(new.balance - old.balance)
            batch = self.db.batch()
            batch.update(ref, fields, option=unchanged(snap))
            commit(batch)
            return new

        return self._optimistic(attempt)

    def delete_account(self, user_id: str, account_id: str) -> None:
        ref = self._col(user_id, "accounts").document(account_id)
        # Hidden at once; the transactions go in batches; a crash leaves it hidden and a
        # repeated DELETE finishes the job.
        try:
            ref.update({"deleting": True})
        except gexc.NotFound:
            return  # a concurrent delete finished first
        while self._optimistic(lambda: self._delete_transactions_page(user_id, account_id)):
            pass
        ref.delete()

    def _delete_transactions_page(self, user_id: str, account_id: str) -> bool:
        """Delete one page of the account's transactions; False when none are left."""
        txns = self._col(user_id, "transactions")
        snaps = list(
            txns.where(filter=FieldFilter("account_id", "==", account_id))
            .limit(DELETE_PAGE)
            .stream()
        )
        if not snaps:
            return False
        victims = [txn_of(s.id, s.to_dict() or {}) for s in snaps]
        # The other side of a transfer stays in its account, still a transfer (so it is
        # not suddenly income or expense), only unlinked.
        others = [
            v.counterpart_id
            for v in victims
            if v.counterpart_id and v.counterpart_account_id != account_id
        ]
        alive = {s.id: s for s in self.db.get_all([txns.document(i) for i in others]) if s.exists}
        ledger = LedgerBatch(self.db, user_id)
        for snap, v in zip(snaps, victims, strict=True):
            # Only as read: two deletes of one account must not both take it off the models.
            ledger.delete(snap, v)
            if v.counterpart_id in alive:
                ledger.batch.update(
                    txns.document(v.counterpart_id),
                    {"counterpart_id": None, "counterpart_account_id": None},
                    option=unchanged(alive[v.counterpart_id]),
                )
        # The account itself goes: its balance is not kept.
        commit(ledger.stage(without={account_id}))
        return True
