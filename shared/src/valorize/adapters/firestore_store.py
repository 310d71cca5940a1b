"""The Store port on Cloud Firestore.

Layout (everything a user owns lives under their document, so a path can never reach
another user's data):

    credentials/{key_of(email)}          email, user_id, password_hash (emails are unique)
    tokens/{token_id}                    user_id, name, secret_hash, expires_at, last_used_at
    users/{uid}                          profile
    users/{uid}/accounts/{id}            balance, transaction_count kept by field increments
    users/{uid}/categories/{id}
    users/{uid}/category_names/{key_of(name_key)}  name_key, category_id: names unique per
                                         user (case-insensitive)
    users/{uid}/transactions/{id}        sort_key = "<date>#<id>" orders lists, newest first
    users/{uid}/idempotency/{key_hash}   written in the same batch as the effect it guards

Balances and counters change through `Increment` in the same batch as the transaction
write: atomic, and free of the read-modify-write contention a hot account document would
suffer. Every read-then-write runs through adapters/firestore_contention.py (preconditioned
batches, retried; no Firestore transactions). Before a ledger write, `check_limits` refuses
one that would take a balance or a read-model sum out of the safe range (domain/limits.py),
reading the accounts and the all-time totals without any precondition on them.

Ids reach this module checked against the forms the API issues (domain/ids.py); text (emails,
category names) is never an id, only hashed into one (`ids.key_of`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore
from google.cloud.firestore_v1 import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.query import Query

from valorize.adapters.firestore_contention import Stale, commit, optimistic, unchanged
from valorize.domain import ids
from valorize.domain.automation import JobStatus, Materialization, RuleJob, RuleJobPage
from valorize.domain.budget import Budget
from valorize.domain.errors import Conflict, NotFound
from valorize.domain.ids import decode_cursor, encode_cursor
from valorize.domain.limits import LedgerReach, Reach, check
from valorize.domain.model import (
    Account,
    AccountType,
    ApiToken,
    Category,
    CategoryType,
    Color,
    Origin,
    Split,
    Transaction,
    User,
)
from valorize.domain.readmodel import Path, change, merge_changes, nest
from valorize.domain.recurrence import Recurrence
from valorize.domain.rules import MAX_RULES, Rule, check_rule_count, numbered
from valorize.service.ports import (
    IdempotencyRecord,
    IdempotentReplay,
    PageResult,
    TransactionFilter,
)

# Firestore allows 500 writes per batch; leave room for the account increments of a batch.
BATCH_LIMIT = 400
# A filtered page stops scanning after this many documents and hands back a cursor, so a
# needle-in-a-haystack search costs bounded reads per request.
SCAN_LIMIT = 2000


# --- mapping ----------------------------------------------------------------------------------


def _user_doc(u: User) -> dict[str, Any]:
    return {
        "email": u.email,
        "name": u.name,
        "preferred_currency": u.preferred_currency,
        "locale": u.locale,
        "created_at": u.created_at,
    }


def _user(doc_id: str, d: dict[str, Any]) -> User:
    return User(
        id=doc_id,
        email=d["email"],
        name=d["name"],
        preferred_currency=d["preferred_currency"],
        locale=d["locale"],
        created_at=d["created_at"],
    )


def _account_doc(a: Account) -> dict[str, Any]:
    return {
        "name": a.name,
        "type": a.type.value,
        "currency": a.currency,
        "opening_balance": a.opening_balance,
        "balance": a.balance,
        "bank_code": a.bank_code,
        "bank_name": a.bank_name,
        "number": a.number,
        "transaction_count": a.transaction_count,
        "low_balance_threshold": a.low_balance_threshold,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


def _account(doc_id: str, d: dict[str, Any]) -> Account:
    return Account(
        id=doc_id,
        name=d["name"],
        type=AccountType(d["type"]),
        currency=d["currency"],
        opening_balance=d["opening_balance"],
        balance=d["balance"],
        bank_code=d.get("bank_code"),
        bank_name=d.get("bank_name"),
        number=d.get("number"),
        transaction_count=d.get("transaction_count", 0),
        low_balance_threshold=d.get("low_balance_threshold"),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def _category_doc(c: Category) -> dict[str, Any]:
    return {
        "name": c.name,
        "name_key": c.name_key,
        "color": c.color.value,
        "type": c.type.value,
        "description": c.description,
        "parent_id": c.parent_id,
        "is_default": c.is_default,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    }


def _category(doc_id: str, d: dict[str, Any]) -> Category:
    return Category(
        id=doc_id,
        name=d["name"],
        color=Color(d["color"]),
        type=CategoryType(d["type"]),
        description=d.get("description"),
        parent_id=d.get("parent_id"),
        is_default=d.get("is_default", False),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def _name_doc(c: Category) -> dict[str, Any]:
    return {"name_key": c.name_key, "category_id": c.id}


def _txn_doc(t: Transaction) -> dict[str, Any]:
    return {
        "account_id": t.account_id,
        "amount": t.amount,
        "currency": t.currency,
        "type": t.type.value,
        "date": t.date.isoformat(),
        "sort_key": t.sort_key,
        "description": t.description,
        "category_id": t.category_id,
        "category_ids": t.category_ids,
        "notes": t.notes,
        "splits": [
            {"category_id": s.category_id, "amount": s.amount, "description": s.description}
            for s in t.splits
        ],
        "origin": t.origin.value,
        "fitid": t.fitid,
        "import_id": t.import_id,
        "transfer_id": t.transfer_id,
        "counterpart_id": t.counterpart_id,
        "counterpart_account_id": t.counterpart_account_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }


def _txn(doc_id: str, d: dict[str, Any]) -> Transaction:
    return Transaction(
        id=doc_id,
        account_id=d["account_id"],
        amount=d["amount"],
        currency=d["currency"],
        date=date.fromisoformat(d["date"]),
        description=d["description"],
        category_id=d.get("category_id"),
        notes=d.get("notes"),
        splits=tuple(
            Split(s.get("category_id"), s["amount"], s.get("description"))
            for s in d.get("splits") or []
        ),
        origin=Origin(d.get("origin", "manual")),
        fitid=d.get("fitid"),
        import_id=d.get("import_id"),
        transfer_id=d.get("transfer_id"),
        counterpart_id=d.get("counterpart_id"),
        counterpart_account_id=d.get("counterpart_account_id"),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def _budget_doc(b: Budget) -> dict[str, Any]:
    return {
        "category_id": b.category_id,
        "name": b.name,
        "currency": b.currency,
        "allocations": dict(b.allocations),
        "created_at": b.created_at,
        "updated_at": b.updated_at,
    }


def _budget(doc_id: str, d: dict[str, Any]) -> Budget:
    return Budget(
        id=doc_id,
        category_id=d["category_id"],
        name=d["name"],
        currency=d["currency"],
        allocations=dict(d.get("allocations") or {}),
        created_at=d["created_at"],
        updated_at=d["updated_at"],
    )


def _idem_doc(r: IdempotencyRecord) -> dict[str, Any]:
    return {
        "fingerprint": r.fingerprint,
        "status": r.status,
        "body": r.body,
        "expires_at": r.expires_at,
    }


class FirestoreStore:
    def __init__(self, client: firestore.Client) -> None:
        self.db = client

    # --- references ---------------------------------------------------------------------------

    def _user_ref(self, uid: str) -> firestore.DocumentReference:
        return self.db.collection("users").document(uid)

    def _col(self, uid: str, name: str) -> firestore.CollectionReference:
        col: firestore.CollectionReference = self._user_ref(uid).collection(name)
        return col

    def _idem_ref(self, scope: str, key_hash: str) -> firestore.DocumentReference:
        return self._col(scope, "idempotency").document(key_hash)

    def _name_ref(self, uid: str, name_key: str) -> firestore.DocumentReference:
        return self._col(uid, "category_names").document(ids.key_of(name_key))

    def _commit(
        self,
        batch: firestore.WriteBatch,
        scope: str,
        idem: IdempotencyRecord | None,
        on_conflict: Callable[[], Exception] | None = None,
    ) -> None:
        if idem is not None:
            batch.create(self._idem_ref(scope, idem.key_hash), _idem_doc(idem))
        try:
            batch.commit()
        except gexc.AlreadyExists:
            if idem is not None:
                prior = self.get_idempotency(scope, idem.key_hash, drop_expired=False)
                if prior is not None:
                    raise IdempotentReplay(prior) from None
            if on_conflict is not None:
                raise on_conflict() from None
            raise
        except gexc.NotFound:
            # An update() in the batch met a document deleted meanwhile (e.g. the account).
            raise NotFound("a referenced resource no longer exists") from None

    def _apply_months(
        self,
        writer: firestore.WriteBatch,
        user_id: str,
        changes: dict[str, dict[Path, int]],
    ) -> None:
        """Add a write's read-model increments to the same batch."""
        months = self._col(user_id, "months")
        for month, paths in changes.items():
            increments = {p: firestore.Increment(v) for p, v in paths.items()}
            writer.set(
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
            writer.set(
                self._col(user_id, "totals").document("all"),
                {"currencies": nest({p: firestore.Increment(v) for p, v in overall.items()})},
                merge=True,
            )

    def get_months(self, user_id: str, months: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The read model of these months ("YYYY-MM"); a month with no activity is absent."""
        col = self._col(user_id, "months")
        snaps = self.db.get_all([col.document(m) for m in dict.fromkeys(months)])
        return {s.id: (s.to_dict() or {}).get("currencies", {}) for s in snaps if s.exists}

    def get_totals(self, user_id: str) -> dict[str, Any]:
        """All-time read model (same shape as a month's)."""
        snap = self._col(user_id, "totals").document("all").get()
        return dict((snap.to_dict() or {}).get("currencies", {})) if snap.exists else {}

    def get_months_from(self, user_id: str, month: str) -> dict[str, dict[str, Any]]:
        """Every month's read model from `month` on (usually this month and a few ahead)."""
        q = self._col(user_id, "months").where(filter=FieldFilter("month", ">=", month))
        return {s.id: (s.to_dict() or {}).get("currencies", {}) for s in q.stream()}

    def check_limits(self, user_id: str, reach: LedgerReach, field_name: str = "amount") -> None:
        """Raise OutOfSafeRange (422) when the write could take a balance or an all-time sum
        out of the safe range. One read of the accounts and totals/all, kept out of the
        write's preconditions (see domain/limits.py: a stale read is safe), so the check adds
        no contention on those hot documents."""
        if not reach:
            return
        accounts = self._col(user_id, "accounts")
        totals_ref = self._col(user_id, "totals").document("all")
        refs = [accounts.document(a) for a in reach.balances]
        balances: dict[str, tuple[str, int]] = {}
        totals: dict[str, Any] = {}
        for snap in self.db.get_all([*refs, totals_ref] if reach.sums else refs):
            d = (snap.to_dict() or {}) if snap.exists else {}
            if snap.reference.path == totals_ref.path:
                totals = d.get("currencies", {})
            else:
                balances[snap.id] = (d.get("name", ""), d.get("balance", 0))
        check(reach, balances, totals, field_name)

    # --- budgets ------------------------------------------------------------------------------

    def _budget_ref(self, user_id: str, budget_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "budgets").document(budget_id)
        return ref

    def add_budget(self, user_id: str, budget: Budget) -> tuple[Budget, bool]:
        """Create it, or return the envelope the category already has: (budget, created)."""
        try:
            self._budget_ref(user_id, budget.id).create(_budget_doc(budget))
        except gexc.AlreadyExists:
            existing = self.get_budget(user_id, budget.id)
            if existing is None:  # deleted in between: try once more
                return self.add_budget(user_id, budget)
            return existing, False
        return budget, True

    def get_budget(self, user_id: str, budget_id: str) -> Budget | None:
        snap = self._budget_ref(user_id, budget_id).get()
        return _budget(snap.id, snap.to_dict() or {}) if snap.exists else None

    def list_budgets(self, user_id: str) -> list[Budget]:
        return [_budget(s.id, s.to_dict() or {}) for s in self._col(user_id, "budgets").stream()]

    def rename_budget(self, user_id: str, budget_id: str, name: str, now: datetime) -> Budget:
        try:
            self._budget_ref(user_id, budget_id).update({"name": name, "updated_at": now})
        except gexc.NotFound:
            raise NotFound("budget not found") from None
        found = self.get_budget(user_id, budget_id)
        if found is None:
            raise NotFound("budget not found")
        return found

    def delete_budget(self, user_id: str, budget_id: str) -> bool:
        return self._delete_existing(self._budget_ref(user_id, budget_id))

    def _delete_existing(self, ref: firestore.DocumentReference) -> bool:
        """Delete it; False when it was not there (of two racing deletes, one is True)."""
        try:
            ref.delete(option=self.db.write_option(exists=True))
        except gexc.NotFound:
            return False
        return True

    def get_incomes(self, user_id: str) -> dict[str, int]:
        snap = self._col(user_id, "settings").document("budget_income").get()
        return dict((snap.to_dict() or {}).get("months", {})) if snap.exists else {}

    def set_income(self, user_id: str, month: str, amount: int) -> None:
        self._col(user_id, "settings").document("budget_income").set(
            {"months": {month: amount}}, merge=True
        )

    def change_allocations(
        self,
        user_id: str,
        budget_ids: Sequence[str],
        mutate: Callable[[dict[str, Budget], dict[str, int]], list[Budget]],
    ) -> list[Budget]:
        """Read every budget and the incomes, let `mutate` decide, write what it returns, if
        nothing it read changed meanwhile: two allocations racing for the same income cannot
        both pass the cap (the loser runs again and sees the winner's amount)."""
        budgets_col = self._col(user_id, "budgets")
        income_ref = self._col(user_id, "settings").document("budget_income")

        def attempt() -> list[Budget]:
            # The guard first (see below): envelopes read after it include every change that
            # committed before it was read.
            income_snap = income_ref.get()
            incomes = dict((income_snap.to_dict() or {}).get("months", {}))
            # One envelope per category: a few dozen documents, well under the limit.
            snaps = {s.id: s for s in budgets_col.limit(1000).stream()}
            budgets = {i: _budget(i, s.to_dict() or {}) for i, s in snaps.items()}
            for budget_id in budget_ids:
                if budget_id not in budgets:
                    raise NotFound("budget not found")
            changed = mutate(budgets, incomes)
            batch = self.db.batch()
            for b in changed:
                batch.update(
                    budgets_col.document(b.id),
                    {"allocations": dict(b.allocations), "updated_at": b.updated_at},
                    option=unchanged(snaps[b.id]),
                )
            if income_snap.exists:
                # The cap depends on every envelope, not only those written: each change also
                # bumps the income document, so of two racing changes only one commits.
                batch.update(
                    income_ref,
                    {"allocation_writes": firestore.Increment(1)},
                    option=unchanged(income_snap),
                )
            commit(batch)
            return changed

        return optimistic(attempt)

    def get_idempotency(
        self, scope: str, key_hash: str, drop_expired: bool = True
    ) -> IdempotencyRecord | None:
        ref = self._idem_ref(scope, key_hash)
        snap = ref.get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        if drop_expired and d["expires_at"] <= datetime.now(UTC):
            ref.delete()
            return None
        return IdempotencyRecord(
            key_hash, d["fingerprint"], d["status"], d["body"], d["expires_at"]
        )

    def claim_idempotency(self, scope: str, claim: IdempotencyRecord) -> IdempotencyRecord | None:
        """Take the key before running a command that cannot carry the record in its own
        write; None when taken, else whoever holds it (in flight or done)."""
        try:
            self._idem_ref(scope, claim.key_hash).create(_idem_doc(claim))
        except gexc.AlreadyExists:
            return self.get_idempotency(scope, claim.key_hash, drop_expired=False)
        return None

    def put_idempotency(self, scope: str, record: IdempotencyRecord) -> None:
        self._idem_ref(scope, record.key_hash).set(_idem_doc(record))

    def drop_idempotency(self, scope: str, key_hash: str) -> None:
        self._idem_ref(scope, key_hash).delete()

    # --- users and tokens ---------------------------------------------------------------------

    def create_user(
        self,
        user: User,
        password_hash: str,
        categories: Sequence[Category],
        token: ApiToken,
        secret_hash: str,
    ) -> None:
        batch = self.db.batch()
        batch.create(
            self.db.collection("credentials").document(ids.key_of(user.email)),
            {"email": user.email, "user_id": user.id, "password_hash": password_hash},
        )
        batch.create(self._user_ref(user.id), _user_doc(user))
        for c in categories:
            batch.create(self._col(user.id, "categories").document(c.id), _category_doc(c))
            batch.create(self._name_ref(user.id, c.name_key), _name_doc(c))
        batch.create(
            self.db.collection("tokens").document(token.id), self._token_doc(token, secret_hash)
        )
        self._commit(
            batch, user.id, None, lambda: Conflict("an account with this email already exists")
        )

    def get_user(self, user_id: str) -> User | None:
        snap = self._user_ref(user_id).get()
        return _user(snap.id, snap.to_dict() or {}) if snap.exists else None

    def find_credentials(self, email: str) -> tuple[str, str] | None:
        snap = self.db.collection("credentials").document(ids.key_of(email)).get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        return d["user_id"], d["password_hash"]

    @staticmethod
    def _token_doc(t: ApiToken, secret_hash: str) -> dict[str, Any]:
        return {
            "user_id": t.user_id,
            "name": t.name,
            "secret_hash": secret_hash,
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "last_used_at": t.last_used_at,
        }

    @staticmethod
    def _token(doc_id: str, d: dict[str, Any]) -> ApiToken:
        return ApiToken(
            id=doc_id,
            user_id=d["user_id"],
            name=d["name"],
            created_at=d["created_at"],
            expires_at=d.get("expires_at"),
            last_used_at=d.get("last_used_at"),
        )

    def add_token(
        self, token: ApiToken, secret_hash: str, idem: IdempotencyRecord | None = None
    ) -> None:
        batch = self.db.batch()
        batch.create(
            self.db.collection("tokens").document(token.id), self._token_doc(token, secret_hash)
        )
        self._commit(batch, token.user_id, idem)

    def get_token(self, token_id: str) -> tuple[ApiToken, str] | None:
        if not ids.ENTITY.matches(token_id):
            return None
        snap = self.db.collection("tokens").document(token_id).get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        return self._token(snap.id, d), d["secret_hash"]

    def touch_token(self, token_id: str, when: datetime) -> None:
        # Revoked meanwhile: nothing to record.
        with contextlib.suppress(gexc.NotFound):
            self.db.collection("tokens").document(token_id).update({"last_used_at": when})

    def list_tokens(self, user_id: str) -> list[ApiToken]:
        snaps = (
            self.db.collection("tokens")
            .where(filter=FieldFilter("user_id", "==", user_id))
            .stream()
        )
        tokens = [self._token(s.id, s.to_dict() or {}) for s in snaps]
        return sorted(tokens, key=lambda t: t.created_at, reverse=True)

    def delete_token(self, user_id: str, token_id: str) -> bool:
        found = self.get_token(token_id)
        if found is None or found[0].user_id != user_id:
            return False
        return self._delete_existing(self.db.collection("tokens").document(token_id))

    # --- accounts -----------------------------------------------------------------------------

    def add_account(
        self, user_id: str, account: Account, idem: IdempotencyRecord | None = None
    ) -> None:
        batch = self.db.batch()
        batch.create(self._col(user_id, "accounts").document(account.id), _account_doc(account))
        self._commit(batch, user_id, idem)

    def get_account(self, user_id: str, account_id: str) -> Account | None:
        snap = self._col(user_id, "accounts").document(account_id).get()
        if not snap.exists:
            return None
        d = snap.to_dict() or {}
        return None if d.get("deleting") else _account(snap.id, d)

    def get_accounts(self, user_id: str, account_ids: Sequence[str]) -> dict[str, Account]:
        refs = [self._col(user_id, "accounts").document(i) for i in dict.fromkeys(account_ids)]
        found: dict[str, Account] = {}
        for snap in self.db.get_all(refs):
            d = snap.to_dict() if snap.exists else None
            if d and not d.get("deleting"):
                found[snap.id] = _account(snap.id, d)
        return found

    def list_accounts(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Account]:
        col = self._col(user_id, "accounts")
        q: Query = col.order_by(FieldPath.document_id())
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            q = q.start_after({FieldPath.document_id(): col.document(after)})
        snaps = list(q.limit(limit + 1).stream())
        items = [
            _account(s.id, d) for s in snaps[:limit] if not (d := s.to_dict() or {}).get("deleting")
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
            old = _account(snap.id, d)
            new = mutate(old)
            moved = LedgerReach({old.id: Reach.of(new.balance - old.balance)})
            check(moved, {old.id: (old.name, old.balance)}, {}, "opening_balance")
            fields = _account_doc(new)
            # The balance moves by a delta so concurrent transaction writes are not lost.
            fields.pop("transaction_count")
            fields["balance"] = firestore.Increment(new.balance - old.balance)
            batch = self.db.batch()
            batch.update(ref, fields, option=unchanged(snap))
            commit(batch)
            return new

        return optimistic(attempt)

    def delete_account(self, user_id: str, account_id: str) -> None:
        ref = self._col(user_id, "accounts").document(account_id)
        # Hidden at once; the transactions go in batches; a crash leaves it hidden and a
        # repeated DELETE finishes the job.
        try:
            ref.update({"deleting": True})
        except gexc.NotFound:
            return  # a concurrent delete finished first
        while optimistic(lambda: self._delete_account_page(user_id, account_id)):
            pass
        ref.delete()

    def _delete_account_page(self, user_id: str, account_id: str) -> bool:
        """Delete one page of the account's transactions; False when none are left."""
        txns = self._col(user_id, "transactions")
        snaps = list(
            txns.where(filter=FieldFilter("account_id", "==", account_id))
            .limit(BATCH_LIMIT // 2)
            .stream()
        )
        if not snaps:
            return False
        victims = [_txn(s.id, s.to_dict() or {}) for s in snaps]
        # The other side of a transfer stays in its account, still a transfer (so it is
        # not suddenly income or expense), only unlinked.
        others = [
            v.counterpart_id
            for v in victims
            if v.counterpart_id and v.counterpart_account_id != account_id
        ]
        alive = {s.id: s for s in self.db.get_all([txns.document(i) for i in others]) if s.exists}
        batch = self.db.batch()
        for snap, v in zip(snaps, victims, strict=True):
            # Only as read: two deletes of one account must not both take it off the models.
            batch.delete(snap.reference, option=unchanged(snap))
            if v.counterpart_id in alive:
                batch.update(
                    txns.document(v.counterpart_id),
                    {"counterpart_id": None, "counterpart_account_id": None},
                    option=unchanged(alive[v.counterpart_id]),
                )
        self._apply_months(batch, user_id, merge_changes(*(change(v, None) for v in victims)))
        commit(batch)
        return True

    # --- categories ---------------------------------------------------------------------------

    def add_category(
        self, user_id: str, category: Category, idem: IdempotencyRecord | None = None
    ) -> None:
        batch = self.db.batch()
        batch.create(
            self._col(user_id, "categories").document(category.id), _category_doc(category)
        )
        batch.create(self._name_ref(user_id, category.name_key), _name_doc(category))
        self._commit(
            batch,
            user_id,
            idem,
            lambda: Conflict(
                f"a category named {category.name!r} already exists",
            ),
        )

    def get_category(self, user_id: str, category_id: str) -> Category | None:
        snap = self._col(user_id, "categories").document(category_id).get()
        return _category(snap.id, snap.to_dict() or {}) if snap.exists else None

    def get_categories(self, user_id: str, ids: Sequence[str]) -> dict[str, Category]:
        refs = [self._col(user_id, "categories").document(i) for i in dict.fromkeys(ids)]
        return {s.id: _category(s.id, s.to_dict() or {}) for s in self.db.get_all(refs) if s.exists}

    def list_categories(self, user_id: str, limit: int, cursor: str | None) -> PageResult[Category]:
        q: Query = self._col(user_id, "categories").order_by("name_key")
        if cursor:
            after = decode_cursor(cursor, ids.NAME_KEY_CURSOR)
            q = q.where(filter=FieldFilter("name_key", ">", after))
        snaps = list(q.limit(limit + 1).stream())
        items = [_category(s.id, s.to_dict() or {}) for s in snaps[:limit]]
        nxt = encode_cursor(items[-1].name_key) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def update_category(self, user_id: str, old: Category, new: Category) -> None:
        ref = self._col(user_id, "categories").document(old.id)

        def attempt() -> None:
            # The name record to free is the stored one: a concurrent rename may have
            # replaced `old`'s, and freeing that one would leave the winner's taken forever.
            snap = ref.get()
            if not snap.exists:
                raise NotFound("category not found")
            current = (snap.to_dict() or {}).get("name_key", old.name_key)
            batch = self.db.batch()
            batch.update(ref, _category_doc(new), option=unchanged(snap))
            if current != new.name_key:
                batch.delete(self._name_ref(user_id, current))
                batch.create(self._name_ref(user_id, new.name_key), _name_doc(new))
            try:
                commit(batch)
            except gexc.AlreadyExists:
                raise Conflict(f"a category named {new.name!r} already exists") from None

        optimistic(attempt)

    def has_children(self, user_id: str, category_id: str) -> bool:
        q = (
            self._col(user_id, "categories")
            .where(filter=FieldFilter("parent_id", "==", category_id))
            .limit(1)
        )
        return any(True for _ in q.stream())

    def category_in_use(self, user_id: str, category_id: str) -> bool:
        q = (
            self._col(user_id, "transactions")
            .where(filter=FieldFilter("category_ids", "array_contains", category_id))
            .limit(1)
        )
        return any(True for _ in q.stream())

    def delete_category(self, user_id: str, category: Category, replacement_id: str | None) -> None:
        cid = category.id
        while optimistic(lambda: self._recategorize_page(user_id, cid, replacement_id)):
            pass
        batch = self.db.batch()
        # Subcategories outlive their parent as top-level categories.
        for child in (
            self._col(user_id, "categories")
            .where(filter=FieldFilter("parent_id", "==", cid))
            .stream()
        ):
            batch.update(child.reference, {"parent_id": None})
        batch.delete(self._col(user_id, "categories").document(cid))
        # A category's envelope goes with it (as in the original).
        batch.delete(self._col(user_id, "budgets").document(cid))
        batch.delete(self._name_ref(user_id, category.name_key))
        batch.commit()

    def _recategorize_page(self, user_id: str, cid: str, replacement_id: str | None) -> bool:
        """Move one page of transactions off a category; False when none are left."""
        snaps = list(
            self._col(user_id, "transactions")
            .where(filter=FieldFilter("category_ids", "array_contains", cid))
            .limit(BATCH_LIMIT)
            .stream()
        )
        if not snaps:
            return False
        batch = self.db.batch()
        changes = []
        for s in snaps:
            t = _txn(s.id, s.to_dict() or {})
            moved = replace(
                t,
                category_id=replacement_id if t.category_id == cid else t.category_id,
                splits=tuple(
                    replace(sp, category_id=replacement_id) if sp.category_id == cid else sp
                    for sp in t.splits
                ),
            )
            # Only as read: two deletes of one category must not both move its sums.
            batch.update(
                s.reference,
                {
                    "category_id": moved.category_id,
                    "category_ids": moved.category_ids,
                    "splits": _txn_doc(moved)["splits"],
                },
                option=unchanged(s),
            )
            changes.append(change(t, moved))
        self._apply_months(batch, user_id, merge_changes(*changes))
        commit(batch)
        return True

    # --- transactions -------------------------------------------------------------------------

    def add_transactions(
        self,
        user_id: str,
        transactions: Sequence[Transaction],
        idem: IdempotencyRecord | None = None,
    ) -> None:
        batch = self.db.batch()
        deltas: dict[str, tuple[int, int]] = {}
        for t in transactions:
            batch.create(self._col(user_id, "transactions").document(t.id), _txn_doc(t))
            amount, count = deltas.get(t.account_id, (0, 0))
            deltas[t.account_id] = (amount + t.amount, count + 1)
        months = merge_changes(*(change(None, t) for t in transactions))
        self.check_limits(user_id, LedgerReach.of({a: d[0] for a, d in deltas.items()}, months))
        self._apply_months(batch, user_id, months)
        for account_id, (amount, count) in deltas.items():
            # update() requires the account to exist: a concurrent delete fails the batch.
            batch.update(
                self._col(user_id, "accounts").document(account_id),
                {
                    "balance": firestore.Increment(amount),
                    "transaction_count": firestore.Increment(count),
                },
            )
        self._commit(batch, user_id, idem)

    def get_transaction(self, user_id: str, transaction_id: str) -> Transaction | None:
        snap = self._col(user_id, "transactions").document(transaction_id).get()
        return _txn(snap.id, snap.to_dict() or {}) if snap.exists else None

    def update_transaction(
        self,
        user_id: str,
        transaction_id: str,
        mutate: Callable[[Transaction, Transaction | None], tuple[Transaction, Transaction | None]],
    ) -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
        txns = self._col(user_id, "transactions")
        accounts = self._col(user_id, "accounts")
        ref = txns.document(transaction_id)

        def attempt() -> tuple[Transaction, Transaction, Transaction | None, Transaction | None]:
            snap = ref.get()
            if not snap.exists:
                raise NotFound("transaction not found")
            old = _txn(snap.id, snap.to_dict() or {})
            old_cp: Transaction | None = None
            cp_snap = None
            if old.counterpart_id:
                cp_snap = txns.document(old.counterpart_id).get()
                old_cp = _txn(cp_snap.id, cp_snap.to_dict() or {}) if cp_snap.exists else None
            new, new_cp = mutate(old, old_cp)
            months = change(old, new)
            moved = {old.account_id: new.amount - old.amount}
            if old_cp is not None and new_cp is not None:
                months = merge_changes(months, change(old_cp, new_cp))
                moved[old_cp.account_id] = (
                    moved.get(old_cp.account_id, 0) + new_cp.amount - old_cp.amount
                )
            self.check_limits(user_id, LedgerReach.of(moved, months))
            batch = self.db.batch()
            # update() of every field = set(), but only if nobody wrote it since it was read.
            batch.update(ref, _txn_doc(new), option=unchanged(snap))
            self._apply_months(batch, user_id, months)
            if new.amount != old.amount:
                batch.update(
                    accounts.document(old.account_id),
                    {"balance": firestore.Increment(new.amount - old.amount)},
                )
            if cp_snap is not None and old_cp is not None and new_cp is not None:
                batch.update(cp_snap.reference, _txn_doc(new_cp), option=unchanged(cp_snap))
                if new_cp.amount != old_cp.amount:
                    batch.update(
                        accounts.document(old_cp.account_id),
                        {"balance": firestore.Increment(new_cp.amount - old_cp.amount)},
                    )
            self._commit_attempt(batch)
            return old, new, old_cp, new_cp

        return optimistic(attempt)

    def _commit_attempt(self, batch: firestore.WriteBatch) -> None:
        try:
            commit(batch)
        except gexc.NotFound:
            raise NotFound("the transaction's account no longer exists") from None

    def delete_transaction(self, user_id: str, transaction_id: str) -> list[Transaction]:
        txns = self._col(user_id, "transactions")
        accounts = self._col(user_id, "accounts")

        def attempt() -> list[Transaction]:
            snap = txns.document(transaction_id).get()
            if not snap.exists:
                raise NotFound("transaction not found")
            victims = [(snap, _txn(snap.id, snap.to_dict() or {}))]
            # Deleting one side of a transfer deletes both.
            if victims[0][1].counterpart_id:
                cp = txns.document(victims[0][1].counterpart_id).get()
                if cp.exists:
                    victims.append((cp, _txn(cp.id, cp.to_dict() or {})))
            months = merge_changes(*(change(t, None) for _, t in victims))
            moved: dict[str, int] = {}
            for _, t in victims:
                moved[t.account_id] = moved.get(t.account_id, 0) - t.amount
            self.check_limits(user_id, LedgerReach.of(moved, months))
            batch = self.db.batch()
            self._apply_months(batch, user_id, months)
            for victim, t in victims:
                # Only as read: of two deletes racing, the loser re-reads and finds nothing.
                batch.delete(victim.reference, option=unchanged(victim))
                batch.update(
                    accounts.document(t.account_id),
                    {
                        "balance": firestore.Increment(-t.amount),
                        "transaction_count": firestore.Increment(-1),
                    },
                )
            self._commit_attempt(batch)
            return [t for _, t in victims]

        return optimistic(attempt)

    def list_transactions(
        self, user_id: str, flt: TransactionFilter, limit: int, cursor: str | None
    ) -> PageResult[Transaction]:
        # Order first so every filter below refines one Query (cursor = sort_key).
        q: Query = self._col(user_id, "transactions").order_by(
            "sort_key", direction=firestore.Query.DESCENDING
        )
        for field_name, value in (
            ("account_id", flt.account_id),
            ("type", flt.type),
            ("import_id", flt.import_id),
        ):
            if value is not None:
                q = q.where(filter=FieldFilter(field_name, "==", value))
        if flt.category_id is not None:
            q = q.where(filter=FieldFilter("category_ids", "array_contains", flt.category_id))
        if flt.date_from is not None:
            q = q.where(filter=FieldFilter("sort_key", ">=", flt.date_from))
        if flt.date_to is not None:
            # "$" sorts right after "#", so every key of that day is included.
            q = q.where(filter=FieldFilter("sort_key", "<", flt.date_to + "$"))
        position = decode_cursor(cursor, ids.TRANSACTION_CURSOR) if cursor else None
        if flt.predicate is None:
            page = list(self._scan(q, position, limit + 1, limit + 1))
            items = page[:limit]
            return PageResult(
                items, encode_cursor(items[-1].sort_key) if len(page) > limit else None
            )
        items, last_seen, scanned = [], None, 0
        for t in self._scan(q, position, SCAN_LIMIT, max(limit * 2, 100)):
            scanned += 1
            last_seen = t.sort_key
            if flt.predicate(t):
                items.append(t)
                if len(items) == limit:
                    break
        exhausted = scanned < SCAN_LIMIT and len(items) < limit
        if exhausted or last_seen is None:
            return PageResult(items, None)
        return PageResult(items, encode_cursor(last_seen))

    @staticmethod
    def _scan(q: Query, position: str | None, total: int, chunk: int) -> Iterator[Transaction]:
        seen = 0
        while seen < total:
            page = q
            if position is not None:
                page = page.where(filter=FieldFilter("sort_key", "<", position))
            snaps = list(page.limit(min(chunk, total - seen)).stream())
            for s in snaps:
                t = _txn(s.id, s.to_dict() or {})
                position = t.sort_key
                seen += 1
                yield t
            if len(snaps) < chunk:
                return

    # --- rules (see adapters/automation_docs.py for the documents) ----------------------------

    def _rule_snaps(self, user_id: str) -> list[Any]:
        # At most MAX_RULES, and for a moment a few more while refused creates are undone.
        return list(self._col(user_id, "rules").limit(2 * MAX_RULES).stream())

    def list_rules(self, user_id: str) -> list[Rule]:
        from valorize.adapters.automation_docs import rule_of

        return numbered(rule_of(s.id, s.to_dict() or {}) for s in self._rule_snaps(user_id))

    def add_rule(self, user_id: str, place: Callable[[list[Rule]], Rule]) -> Rule:
        from valorize.adapters.automation_docs import rule_doc

        order = self.list_rules(user_id)
        check_rule_count(len(order))
        rule = place(order)
        ref = self._col(user_id, "rules").document(rule.id)
        counter = self._col(user_id, "settings").document("rules")
        # The limit without a transaction: the create and the count's increment commit
        # together, and the increment's result says how many rules there are now.
        batch = self.db.batch()
        batch.create(ref, rule_doc(rule))
        batch.set(counter, {"count": firestore.Increment(1)}, merge=True)
        count = batch.commit()[1].transform_results[0].integer_value
        if count > MAX_RULES:
            undo = self.db.batch()
            undo.delete(ref)
            undo.set(counter, {"count": firestore.Increment(-1)}, merge=True)
            undo.commit()
            check_rule_count(count - 1)
        return next(x for x in numbered([*order, rule]) if x.id == rule.id)

    def update_rule(
        self, user_id: str, rule_id: str, mutate: Callable[[Rule, list[Rule]], Rule]
    ) -> Rule:
        from valorize.adapters.automation_docs import rule_doc, rule_of

        def attempt() -> Rule:
            snaps = {s.id: s for s in self._rule_snaps(user_id)}
            if rule_id not in snaps:
                raise NotFound("rule not found")
            order = numbered(rule_of(i, s.to_dict() or {}) for i, s in snaps.items())
            others = [x for x in order if x.id != rule_id]
            new = mutate(next(x for x in order if x.id == rule_id), others)
            batch = self.db.batch()
            batch.update(snaps[rule_id].reference, rule_doc(new), option=unchanged(snaps[rule_id]))
            commit(batch)
            return next(x for x in numbered([*others, new]) if x.id == rule_id)

        return optimistic(attempt)

    def delete_rule(self, user_id: str, rule_id: str) -> bool:
        batch = self.db.batch()
        batch.delete(
            self._col(user_id, "rules").document(rule_id),
            option=self.db.write_option(exists=True),
        )
        batch.set(
            self._col(user_id, "settings").document("rules"),
            {"count": firestore.Increment(-1)},
            merge=True,
        )
        try:
            batch.commit()
        except gexc.NotFound:
            return False  # of two deletes racing, only one counts
        return True

    # --- on-demand rules runs -----------------------------------------------------------------

    def _job_ref(self, user_id: str, job_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "rule_jobs").document(job_id)
        return ref

    def add_rule_job(self, user_id: str, job: RuleJob) -> None:
        from valorize.adapters.automation_docs import job_doc

        self._job_ref(user_id, job.id).create(job_doc(job))

    def get_rule_job(self, user_id: str, job_id: str) -> RuleJob | None:
        from valorize.adapters.automation_docs import job_of

        snap = self._job_ref(user_id, job_id).get()
        return job_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def start_rule_job_page(self, user_id: str, job_id: str, page: RuleJobPage) -> RuleJobPage:
        from valorize.adapters.automation_docs import page_doc, page_of

        ref = self._job_ref(user_id, job_id).collection("pages").document(str(page.index))
        try:
            ref.create(page_doc(page))
        except gexc.AlreadyExists:
            return page_of(ref.get().to_dict() or {})
        return page

    def finish_rule_job_page(self, user_id: str, job_id: str, index: int, now: datetime) -> bool:
        from valorize.adapters.automation_docs import page_of

        job_ref = self._job_ref(user_id, job_id)
        page_ref = job_ref.collection("pages").document(str(index))

        def attempt() -> bool:
            snap = page_ref.get()
            if not snap.exists:
                raise NotFound("no such page")
            page = page_of(snap.to_dict() or {})
            if page.done:
                return False
            batch = self.db.batch()
            batch.update(page_ref, {"done": True}, option=unchanged(snap))
            last = page.next_cursor is None
            batch.update(
                job_ref,
                {
                    "processed": firestore.Increment(page.processed),
                    "changed": firestore.Increment(page.changed),
                    "pages": firestore.Increment(1),
                    "status": (JobStatus.DONE if last else JobStatus.RUNNING).value,
                    "updated_at": now,
                    "finished_at": now if last else None,
                },
            )
            commit(batch)
            return True

        return optimistic(attempt)

    # --- recurrences --------------------------------------------------------------------------

    def _rec_ref(self, user_id: str, recurrence_id: str) -> firestore.DocumentReference:
        ref: firestore.DocumentReference = self._col(user_id, "recurrences").document(recurrence_id)
        return ref

    def add_recurrence(
        self, user_id: str, recurrence: Recurrence, idem: IdempotencyRecord | None = None
    ) -> None:
        from valorize.adapters.automation_docs import recurrence_doc

        batch = self.db.batch()
        batch.create(self._rec_ref(user_id, recurrence.id), recurrence_doc(recurrence))
        self._commit(batch, user_id, idem)

    def get_recurrence(self, user_id: str, recurrence_id: str) -> Recurrence | None:
        from valorize.adapters.automation_docs import recurrence_of

        snap = self._rec_ref(user_id, recurrence_id).get()
        return recurrence_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def list_recurrences(
        self, user_id: str, limit: int, cursor: str | None
    ) -> PageResult[Recurrence]:
        from valorize.adapters.automation_docs import recurrence_of

        col = self._col(user_id, "recurrences")
        q: Query = col.order_by(FieldPath.document_id())
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            q = q.start_after({FieldPath.document_id(): col.document(after)})
        snaps = list(q.limit(limit + 1).stream())
        items = [recurrence_of(s.id, s.to_dict() or {}) for s in snaps[:limit]]
        nxt = encode_cursor(items[-1].id) if len(snaps) > limit else None
        return PageResult(items, nxt)

    def update_recurrence(
        self, user_id: str, recurrence_id: str, mutate: Callable[[Recurrence], Recurrence]
    ) -> Recurrence:
        from valorize.adapters.automation_docs import recurrence_doc, recurrence_of

        ref = self._rec_ref(user_id, recurrence_id)

        def attempt() -> Recurrence:
            snap = ref.get()
            if not snap.exists:
                raise NotFound("recurrence not found")
            new = mutate(recurrence_of(snap.id, snap.to_dict() or {}))
            batch = self.db.batch()
            batch.update(ref, recurrence_doc(new), option=unchanged(snap))
            commit(batch)
            return new

        return optimistic(attempt)

    def delete_recurrence(self, user_id: str, recurrence_id: str) -> bool:
        return self._delete_existing(self._rec_ref(user_id, recurrence_id))

    def due_recurrences(self, user_id: str, on: date) -> list[Recurrence]:
        from valorize.adapters.automation_docs import recurrence_of

        q = self._col(user_id, "recurrences").where(
            filter=FieldFilter("next_due", "<=", on.isoformat())
        )
        return [recurrence_of(s.id, s.to_dict() or {}) for s in q.stream()]

    def materialize(
        self,
        user_id: str,
        recurrence_id: str,
        plan: Callable[[Recurrence], Materialization | None],
    ) -> tuple[Recurrence, list[Transaction]] | None:
        from valorize.adapters.automation_docs import recurrence_doc, recurrence_of

        ref = self._rec_ref(user_id, recurrence_id)
        txns = self._col(user_id, "transactions")
        accounts = self._col(user_id, "accounts")

        def attempt() -> tuple[Recurrence, list[Transaction]] | None:
            snap = ref.get()
            if not snap.exists:
                return None
            step = plan(recurrence_of(snap.id, snap.to_dict() or {}))
            if step is None:
                return None
            wanted = list(step.transactions)
            refs = [txns.document(t.id) for t in wanted]
            # Create-if-absent: the batch creates (fails if a concurrent run created any of
            # them first) and moves the watermark only if nobody moved it since it was read.
            existing = {s.id for s in self.db.get_all(refs) if s.exists} if refs else set()
            fresh = [t for t in wanted if t.id not in existing]
            months = merge_changes(*(change(None, t) for t in fresh))
            deltas: dict[str, tuple[int, int]] = {}
            for t in fresh:
                amount, count = deltas.get(t.account_id, (0, 0))
                deltas[t.account_id] = (amount + t.amount, count + 1)
            self.check_limits(user_id, LedgerReach.of({a: d[0] for a, d in deltas.items()}, months))
            batch = self.db.batch()
            for t in fresh:
                batch.create(txns.document(t.id), _txn_doc(t))
            self._apply_months(batch, user_id, months)
            for account_id, (amount, count) in deltas.items():
                batch.update(
                    accounts.document(account_id),
                    {
                        "balance": firestore.Increment(amount),
                        "transaction_count": firestore.Increment(count),
                    },
                )
            doc = recurrence_doc(step.recurrence)
            batch.update(
                ref,
                {k: doc[k] for k in ("materialized_through", "next_due")},
                option=unchanged(snap),
            )
            try:
                commit(batch)
            except gexc.AlreadyExists as error:
                raise Stale(str(error)) from error
            except gexc.NotFound:
                raise NotFound("the recurrence's account no longer exists") from None
            return step.recurrence, fresh

        return optimistic(attempt)

    # --- the scheduler's fan-out --------------------------------------------------------------

    def users_with_due_recurrences(
        self, on: date, limit: int, cursor: str | None
    ) -> PageResult[str]:
        # Needs the collection-group single-field index on recurrences.next_due (infra).
        q: Query = (
            self.db.collection_group("recurrences")
            .where(filter=FieldFilter("next_due", "<=", on.isoformat()))
            .order_by("next_due")
            .order_by(FieldPath.document_id())
        )
        if cursor:
            due, _, path = decode_cursor(cursor, ids.DUE_CURSOR).partition("|")
            q = q.start_after({"next_due": due, FieldPath.document_id(): self.db.document(path)})
        snaps = list(q.limit(limit).stream())
        users: dict[str, None] = {}
        for s in snaps:
            parent = s.reference.parent.parent
            if parent is not None:
                users.setdefault(parent.id)
        nxt = None
        if len(snaps) == limit:
            last = snaps[-1]
            nxt = encode_cursor(f"{(last.to_dict() or {})['next_due']}|{last.reference.path}")
        return PageResult(list(users), nxt)

    def list_user_ids(self, limit: int, cursor: str | None) -> PageResult[str]:
        col = self.db.collection("users")
        q: Query = col.order_by(FieldPath.document_id()).select([])
        if cursor:
            after = decode_cursor(cursor, ids.ENTITY)
            q = q.start_after({FieldPath.document_id(): col.document(after)})
        snaps = list(q.limit(limit).stream())
        found = [s.id for s in snaps]
        return PageResult(found, encode_cursor(found[-1]) if len(found) == limit else None)

    def record_automation_run(
        self, user_id: str, run_id: str, created: int, when: datetime
    ) -> None:
        self._col(user_id, "automation_runs").document(run_id).set(
            {
                "runs": firestore.Increment(1),
                "created": firestore.Increment(created),
                "last_run_at": when,
            },
            merge=True,
        )
