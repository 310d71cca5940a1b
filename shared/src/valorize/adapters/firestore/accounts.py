"""The AccountStore port.

users/{uid}/accounts/{id}           balance and transaction_count move by increments with the
                                    ledger; `deleting` hides an account being deleted
users/{uid}/account_deletions/{id}  state, total, deleted, started_at, updated_at,
                                    finished_at, step: the deletion's progress, kept after
                                    the account is gone
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter

from valorize.adapters.firestore.base import FirestoreAdapter, by_id
from valorize.adapters.firestore.contention import commit, unchanged
from valorize.adapters.firestore.documents import (
    TXN_FIELDS,
    account_doc,
    account_of,
    deletion_doc,
    deletion_of,
    txn_of,
)
from valorize.adapters.firestore.idempotency import commit_with_record
from valorize.adapters.firestore.ledger_batch import LedgerBatch
from valorize.domain.errors import NotFound
from valorize.domain.ids import encode_cursor
from valorize.domain.limits import LedgerReach, Reach, check
from valorize.domain.model import Account, AccountDeletion, DeletionState
from valorize.service.ports.idempotency import IdempotencyRecord
from valorize.service.ports.pages import PageResult


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

    # --- deletion, a page at a time -------------------------------------------------------

    def _deletion_ref(self, user_id: str, account_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "account_deletions").document(
            account_id
        )
        return ref

    def hide_account(
        self, user_id: str, account_id: str, now: datetime
    ) -> tuple[AccountDeletion, bool] | None:
        ref = self._col(user_id, "accounts").document(account_id)
        progress = self._deletion_ref(user_id, account_id)

        def attempt() -> tuple[AccountDeletion, bool] | None:
            snap = ref.get()
            d = snap.to_dict() if snap.exists else None
            if not d or d.get("deleting"):
                recorded = self.get_deletion(user_id, account_id)
                if recorded is not None:
                    return recorded, False
                if not d:
                    return None
                # Hidden by the synchronous delete this replaced, and interrupted: recorded
                # now, so the task finishes it (what it deleted before is not counted).
            deletion = AccountDeletion(
                account_id=account_id,
                state=DeletionState.RUNNING,
                total=d.get("transaction_count", 0),
                deleted=0,
                started_at=now,
                updated_at=now,
            )
            batch = self.db.batch()
            # As read: of two deletes racing, one hides it and the other reads its deletion.
            batch.update(ref, {"deleting": True}, option=unchanged(snap))
            batch.set(progress, deletion_doc(deletion))
            commit(batch)
            return deletion, True

        return self._optimistic(attempt)

    def get_deletion(self, user_id: str, account_id: str) -> AccountDeletion | None:
        snap = self._deletion_ref(user_id, account_id).get()
        return deletion_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def delete_account_page(
        self, user_id: str, account_id: str, limit: int, now: datetime
    ) -> AccountDeletion | None:
        return self._optimistic(lambda: self._delete_page(user_id, account_id, limit, now))

    def _delete_page(
        self, user_id: str, account_id: str, limit: int, now: datetime
    ) -> AccountDeletion | None:
        progress = self._deletion_ref(user_id, account_id)
        read = progress.get()
        deletion = deletion_of(read.id, read.to_dict() or {}) if read.exists else None
        if deletion is None or deletion.state is DeletionState.DONE:
            return deletion
        account_ref = self._col(user_id, "accounts").document(account_id)
        # Read before the query: a transaction that reached the account after it was hidden
        # (its write read the account before) moved its count, so the account's delete
        # below fails as stale and the next attempt finds that transaction.
        account = account_ref.get()
        txns = self._col(user_id, "transactions")
        snaps = list(
            txns.where(filter=FieldFilter("account_id", "==", account_id))
            .select(TXN_FIELDS)
            .limit(limit)
            .stream()
        )
        if not snaps:
            batch = self.db.batch()
            if account.exists:
                batch.delete(account_ref, option=unchanged(account))
            done = replace(deletion, state=DeletionState.DONE, updated_at=now, finished_at=now)
            # Only as read: a delivery racing this one may have finished it meanwhile (the
            # attempt then reads it again and answers it as that one left it).
            batch.update(
                progress,
                {"state": done.state.value, "updated_at": now, "finished_at": now},
                option=unchanged(read),
            )
            commit(batch)
            return done
        victims = [txn_of(s.id, s.to_dict() or {}) for s in snaps]
        # The other side of a transfer stays in its account, still a transfer (so it is
        # not suddenly income or expense), only unlinked.
        others = [
            v.counterpart_id
            for v in victims
            if v.counterpart_id and v.counterpart_account_id != account_id
        ]
        # Whether each exists, and as of when: its fields are not needed.
        refs = [txns.document(i) for i in others]
        alive = {s.id: s for s in self.db.get_all(refs, field_paths=[]) if s.exists}
        ledger = LedgerBatch(self.db, user_id)
        for snap, v in zip(snaps, victims, strict=True):
            # Only as read: two runs of one deletion must not both take it off the models
            # (nor both count it: the progress moves in the same batch).
            ledger.delete(snap, v)
            if v.counterpart_id in alive:
                ledger.batch.update(
                    txns.document(v.counterpart_id),
                    {"counterpart_id": None, "counterpart_account_id": None},
                    option=unchanged(alive[v.counterpart_id]),
                )
        ledger.batch.update(
            progress, {"deleted": firestore.Increment(len(snaps)), "updated_at": now}
        )
        # The account itself goes: its balance is not kept.
        commit(ledger.stage(without={account_id}))
        return replace(deletion, deleted=deletion.deleted + len(snaps), updated_at=now)

    def advance_deletion(
        self, user_id: str, account_id: str, step: int, now: datetime
    ) -> AccountDeletion | None:
        progress = self._deletion_ref(user_id, account_id)

        def attempt() -> AccountDeletion | None:
            snap = progress.get()
            if not snap.exists:
                return None
            deletion = deletion_of(snap.id, snap.to_dict() or {})
            if deletion.state is DeletionState.DONE or deletion.step != step:
                return deletion
            batch = self.db.batch()
            batch.update(progress, {"step": step + 1, "updated_at": now}, option=unchanged(snap))
            commit(batch)
            return replace(deletion, step=step + 1, updated_at=now)

        return self._optimistic(attempt)
